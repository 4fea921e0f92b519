-- neotoma_ops.record_owned_objects(p_source, p_this_transaction DEFAULT true) → how many record rows it wrote
-- After a migration, SQL file or deferred step (p_source: its name) ran: records what it did, from the difference
-- between the catalog now and neotoma_ops.catalog_before (taken by neotoma_ops.snapshot_catalog() just before it
-- ran; the migrate lease keeps other runs out). An object this transaction wrote that is new, or whose definition or state changed: recorded as the
-- source's (or, when it existed before and was not the project's, as changed by the source, with what it was).
-- An object that is gone: forgotten when it was the project's; recorded as dropped (to stay absent) when not.
-- With p_this_transaction (a step that ran in this transaction), a catalog row this transaction did not write is
-- another session's work and never recorded; a deferred step ran in transactions of its own.
CREATE OR REPLACE FUNCTION neotoma_ops.record_owned_objects(p_source text, p_this_transaction boolean DEFAULT true)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $fn$
DECLARE
  v_rows integer := 0;
  v_n    integer;
BEGIN
  DELETE FROM neotoma_ops.catalog_after;
  INSERT INTO neotoma_ops.catalog_after SELECT * FROM neotoma_ops.catalog_objects();

  -- created by the source, or changed: the project's objects follow their new definition
  WITH touched AS (
    SELECT a.kind, a.identity, a.definition, a.state, b.definition AS old_definition, b.state AS old_state,
           b.identity IS NOT NULL AS existed
      FROM neotoma_ops.catalog_after AS a
      LEFT JOIN neotoma_ops.catalog_before AS b ON b.kind = a.kind AND b.identity = a.identity
     WHERE (a.written OR NOT p_this_transaction)
       AND (b.identity IS NULL OR b.definition IS DISTINCT FROM a.definition OR b.state IS DISTINCT FROM a.state)
  )
  INSERT INTO neotoma_ops.owned_objects AS o (kind, identity, source, definition, state, preexisting, previous_definition,
                                              previous_state)
  SELECT t.kind, t.identity, p_source, t.definition, t.state, t.existed, t.old_definition, t.old_state
    FROM touched AS t
   ORDER BY t.kind, t.identity
  ON CONFLICT (kind, identity) DO UPDATE
     SET definition = EXCLUDED.definition, state = EXCLUDED.state, recorded_at = pg_catalog.now(),
         -- re-created by another file (an object moved between files) or by the same one: that source owns it now
         source = CASE WHEN o.preexisting OR EXCLUDED.preexisting THEN o.source ELSE EXCLUDED.source END,
         changed_by = CASE WHEN EXCLUDED.preexisting AND o.source <> p_source THEN p_source ELSE o.changed_by END;
  GET DIAGNOSTICS v_n = ROW_COUNT;
  v_rows := v_rows + v_n;

  -- gone: what the source itself no longer defines is forgotten; anything else it dropped is recorded as dropped by
  -- it (to stay absent until that source is reverted), with what it was
  WITH gone AS (
    SELECT b.* FROM neotoma_ops.catalog_before AS b
     WHERE NOT EXISTS (SELECT 1 FROM neotoma_ops.catalog_after AS a WHERE a.kind = b.kind AND a.identity = b.identity)
  ), own AS (
    DELETE FROM neotoma_ops.owned_objects AS o USING gone AS g
     WHERE o.kind = g.kind AND o.identity = g.identity AND o.source = p_source AND NOT o.preexisting
    RETURNING o.kind, o.identity
  )
  INSERT INTO neotoma_ops.owned_objects AS o (kind, identity, source, definition, state, preexisting, previous_definition,
                                              previous_state)
  SELECT g.kind, g.identity, p_source, NULL, '{}'::jsonb, true, g.definition, g.state
    FROM gone AS g
   WHERE NOT EXISTS (SELECT 1 FROM own WHERE own.kind = g.kind AND own.identity = g.identity)
   ORDER BY g.kind, g.identity
  ON CONFLICT (kind, identity) DO UPDATE
     SET definition = NULL, state = '{}'::jsonb, changed_by = p_source, recorded_at = pg_catalog.now(),
         previous_definition = coalesce(o.previous_definition, EXCLUDED.previous_definition),
         previous_state = coalesce(o.previous_state, EXCLUDED.previous_state);
  GET DIAGNOSTICS v_n = ROW_COUNT;
  RETURN v_rows + v_n;
END
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.record_owned_objects(text, boolean) FROM PUBLIC;
