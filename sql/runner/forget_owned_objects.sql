-- neotoma_ops.forget_owned_objects(p_migration, p_sources): once `migrate down` reverted p_migration (whose SQL
-- files are p_sources): what they created and what they changed is no longer the project's record; objects created
-- earlier that p_migration had changed or dropped are recorded as the catalog holds them now (as its down section
-- left them).
CREATE OR REPLACE FUNCTION neotoma_ops.forget_owned_objects(p_migration text, p_sources text[])
RETURNS void
LANGUAGE sql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $fn$
  DELETE FROM neotoma_ops.owned_objects AS o WHERE o.source = p_migration OR o.source = ANY (p_sources);
  WITH now AS MATERIALIZED (SELECT * FROM neotoma_ops.catalog_objects()),
  changed AS (
    SELECT x.kind, x.identity, n.definition, n.state
      FROM neotoma_ops.owned_objects AS x
      LEFT JOIN now AS n ON n.kind = x.kind AND n.identity = x.identity
     WHERE x.changed_by = p_migration
  )
  UPDATE neotoma_ops.owned_objects AS o
     SET definition = changed.definition, state = coalesce(changed.state, '{}'::jsonb), changed_by = NULL,
         recorded_at = pg_catalog.now()
    FROM changed
   WHERE o.kind = changed.kind AND o.identity = changed.identity;
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.forget_owned_objects(text, text[]) FROM PUBLIC;
