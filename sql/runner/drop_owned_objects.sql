-- neotoma_ops.drop_owned_objects(p_sources) → the objects dropped
-- Drops what the given SQL files created (the record's functions, views and triggers of those sources that still
-- exist): triggers first, then views, then the functions they may call; within a kind by identity. Used by
-- `migrate down` for the files that require the migration it reverts, in that migration's transaction. Objects
-- that existed before a source changed them are never dropped.
CREATE OR REPLACE FUNCTION neotoma_ops.drop_owned_objects(p_sources text[])
RETURNS SETOF text
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $fn$
DECLARE
  r record;
BEGIN
  FOR r IN
    SELECT o.kind, o.identity
      FROM neotoma_ops.owned_objects AS o
      JOIN neotoma_ops.catalog_objects() AS c ON c.kind = o.kind AND c.identity = o.identity
     WHERE o.source = ANY (p_sources) AND NOT o.preexisting AND o.kind IN ('trigger', 'view', 'function')
     ORDER BY pg_catalog.array_position(ARRAY['trigger', 'view', 'function'], o.kind), o.identity
  LOOP
    -- identities are the catalog's own format('%I…'): quoted already, never input
    EXECUTE pg_catalog.format('DROP %s %s', pg_catalog.upper(r.kind), r.identity);
    RETURN NEXT r.kind || ' ' || r.identity;
  END LOOP;
END
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.drop_owned_objects(text[]) FROM PUBLIC;
