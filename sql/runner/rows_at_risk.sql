-- neotoma_ops.rows_at_risk(p_migrations) → (migration, what, how_many)
-- Rows that reverting p_migrations would destroy and that the project did not write itself, so `migrate down`
-- refuses (unless told --drop-data): the application's own tables where a migration created them (it found
-- them absent: neotoma_ops.bootstrap_objects) and they now hold rows; and the upload queue's payloads, bytes that
-- are stored nowhere else until their upload succeeds. The tables are the ones the record says each migration
-- created.
CREATE OR REPLACE FUNCTION neotoma_ops.rows_at_risk(p_migrations text[])
RETURNS TABLE (migration text, what text, how_many bigint)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = ''
AS $fn$
DECLARE
  r record;
BEGIN
  FOR r IN
    SELECT o.source, o.identity,
           EXISTS (SELECT 1 FROM neotoma_ops.bootstrap_objects AS b
                    WHERE b.object_kind = 'table' AND b.object_name = o.identity) AS application_table
      FROM neotoma_ops.owned_objects AS o
     WHERE o.kind = 'table' AND NOT o.preexisting AND o.definition IS NOT NULL AND o.source = ANY (p_migrations)
     ORDER BY o.source, o.identity
  LOOP
    CONTINUE WHEN NOT r.application_table AND r.identity <> 'public.upload_queue_payloads';
    CONTINUE WHEN pg_catalog.to_regclass(r.identity) IS NULL;
    migration := r.source;
    -- the identity is the catalog's own format('%I.%I'), never input
    EXECUTE pg_catalog.format('SELECT count(*) FROM %s', r.identity) INTO how_many;
    CONTINUE WHEN how_many = 0;
    what := CASE WHEN r.application_table
                 THEN pg_catalog.format('rows of %s, the application''s table this migration created', r.identity)
                 ELSE 'queued uploads whose bytes are not stored yet (public.upload_queue_payloads)' END;
    RETURN NEXT;
  END LOOP;
END
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.rows_at_risk(text[]) FROM PUBLIC;
