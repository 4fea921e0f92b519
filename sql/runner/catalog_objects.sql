-- neotoma_ops.catalog_objects() → (kind, identity, definition, state, written)
-- The objects of the schemas neotoma-ops works in (public, neotoma_ops, auth) and the pg_cron jobs of this
-- database, as the catalog holds them now, each with what defines it (DDL where one statement re-creates it) and
-- its state (a trigger's enabled flag, a check's validation, an index's validity, a table's row level security, a
-- job's active flag). `written` says that this transaction wrote the object's catalog row. Objects of extensions
-- are left out. The migration runner records what each migration and SQL file creates or changes from the
-- difference of two calls (neotoma_ops.owned_objects); neotoma_ops.doctor() compares that record with this.
-- Part of the runner (sql/runner/): created before the first migration, dropped after the last one.
CREATE OR REPLACE FUNCTION neotoma_ops.catalog_objects()
RETURNS TABLE (kind text, identity text, definition text, state jsonb, written boolean)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = ''
AS $fn$
DECLARE
  v_xid xid := pg_catalog.pg_current_xact_id_if_assigned()::xid;
BEGIN
  RETURN QUERY
  WITH nsp AS (
    SELECT n.oid, n.nspname FROM pg_catalog.pg_namespace n WHERE n.nspname IN ('public', 'neotoma_ops', 'auth')
  ), ext AS (
    SELECT d.classid, d.objid FROM pg_catalog.pg_depend d WHERE d.deptype = 'e'
  ), rel AS (
    SELECT c.oid, c.relname, c.relkind, c.relrowsecurity, c.xmin, nsp.nspname
      FROM pg_catalog.pg_class c JOIN nsp ON nsp.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'i', 'I')
       AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_catalog.pg_class'::regclass AND ext.objid = c.oid)
  )
  SELECT 'schema', pg_catalog.quote_ident(nsp.nspname), 'schema', '{}'::jsonb, n.xmin = v_xid
    FROM nsp JOIN pg_catalog.pg_namespace n ON n.oid = nsp.oid
  UNION ALL
  SELECT CASE r.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'view' WHEN 'S' THEN 'sequence' ELSE 'table' END,
         pg_catalog.format('%I.%I', r.nspname, r.relname),
         CASE WHEN r.relkind IN ('v', 'm') THEN pg_catalog.pg_get_viewdef(r.oid) ELSE r.relkind::text END,
         CASE WHEN r.relkind IN ('r', 'p') THEN pg_catalog.jsonb_build_object('row_security', r.relrowsecurity)
              ELSE '{}'::jsonb END,
         r.xmin = v_xid
    FROM rel r WHERE r.relkind NOT IN ('i', 'I')
  UNION ALL
  SELECT 'column', pg_catalog.format('%I.%I.%I', r.nspname, r.relname, a.attname),
         pg_catalog.concat_ws(' ', pg_catalog.format_type(a.atttypid, a.atttypmod),
                              CASE WHEN a.attnotnull THEN 'NOT NULL' END,
                              'DEFAULT ' || pg_catalog.pg_get_expr(ad.adbin, ad.adrelid),
                              CASE a.attgenerated WHEN 's' THEN 'GENERATED' END),
         '{}'::jsonb, a.xmin = v_xid
    FROM rel r JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
    LEFT JOIN pg_catalog.pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
   WHERE r.relkind IN ('r', 'p')
  UNION ALL
  SELECT 'constraint', pg_catalog.format('%I ON %I.%I', k.conname, r.nspname, r.relname),
         -- validation is state, not definition: a check added NOT VALID and validated later is the same check
         pg_catalog.regexp_replace(pg_catalog.pg_get_constraintdef(k.oid), ' NOT VALID$', ''),
         pg_catalog.jsonb_build_object('validated', k.convalidated), k.xmin = v_xid
    FROM rel r JOIN pg_catalog.pg_constraint k ON k.conrelid = r.oid
  UNION ALL
  SELECT 'index', pg_catalog.format('%I.%I', r.nspname, r.relname), pg_catalog.pg_get_indexdef(r.oid),
         pg_catalog.jsonb_build_object('valid', i.indisvalid), r.xmin = v_xid
    FROM rel r JOIN pg_catalog.pg_index i ON i.indexrelid = r.oid
   WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k WHERE k.conindid = r.oid AND k.contype IN ('p', 'u', 'x'))
  UNION ALL
  SELECT 'trigger', pg_catalog.format('%I ON %I.%I', t.tgname, r.nspname, r.relname), pg_catalog.pg_get_triggerdef(t.oid),
         pg_catalog.jsonb_build_object('enabled', t.tgenabled::text), t.xmin = v_xid
    FROM rel r JOIN pg_catalog.pg_trigger t ON t.tgrelid = r.oid AND NOT t.tgisinternal
  UNION ALL
  SELECT 'policy', pg_catalog.format('%I ON %I.%I', p.polname, r.nspname, r.relname),
         pg_catalog.format('CREATE POLICY %I ON %I.%I AS %s FOR %s TO %s%s%s', p.polname, r.nspname, r.relname,
           CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END,
           CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE' WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
           (SELECT pg_catalog.string_agg(CASE WHEN x.role = 0 THEN 'PUBLIC' ELSE pg_catalog.quote_ident(x.role::regrole::text) END, ', ' ORDER BY x.n)
              FROM pg_catalog.unnest(p.polroles) WITH ORDINALITY AS x (role, n)),
           ' USING (' || pg_catalog.pg_get_expr(p.polqual, p.polrelid) || ')',
           ' WITH CHECK (' || pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) || ')'),
         '{}'::jsonb, p.xmin = v_xid
    FROM rel r JOIN pg_catalog.pg_policy p ON p.polrelid = r.oid
  UNION ALL
  SELECT 'function', pg_catalog.format('%I.%I(%s)', nsp.nspname, p.proname, pg_catalog.oidvectortypes(p.proargtypes)),
         pg_catalog.pg_get_functiondef(p.oid), '{}'::jsonb, p.xmin = v_xid
    FROM pg_catalog.pg_proc p JOIN nsp ON nsp.oid = p.pronamespace
   WHERE p.prokind IN ('f', 'p')
     AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_catalog.pg_proc'::regclass AND ext.objid = p.oid);

  IF pg_catalog.to_regclass('cron.job') IS NOT NULL THEN
    -- pg_cron's own table: read dynamically so that this function exists where pg_cron does not
    RETURN QUERY EXECUTE
      'SELECT ''cron job''::text, j.jobname::text, pg_catalog.format(''%s %s'', j.schedule, j.command),
              pg_catalog.jsonb_build_object(''schedule'', j.schedule, ''command'', j.command, ''active'', j.active,
                                            ''username'', j.username), j.xmin = $1
         FROM cron.job AS j
        WHERE j.jobname IS NOT NULL AND j.database = pg_catalog.current_database()'
      USING v_xid;
  END IF;
END
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.catalog_objects() FROM PUBLIC;
