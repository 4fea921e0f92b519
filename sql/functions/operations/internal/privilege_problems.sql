-- requires: 0007_operations
-- neotoma_ops.privilege_problems() → (object, grantee, problem, fix)
-- The project's privilege rules, checked against the catalog (used by `neotoma-ops doctor`; empty on a
-- correctly migrated database). The project's objects: the tables v0.3.0 adds or extends in public (listed
-- below), every relation of schema neotoma_ops, and every function and view the SQL files define
-- (neotoma_ops.owned_objects). Other objects of the database (Neotoma's own tables) are not judged.
-- Rules:
--  * row level security is enabled on every project table;
--  * anon holds no privilege on any project relation (table, view, sequence) and no EXECUTE;
--  * authenticated holds at most SELECT on the relations users read (their own rows, through RLS), the
--    status columns of upload_queue, and EXECUTE only on the two pure helpers;
--  * service_role holds nothing beyond SELECT, INSERT, UPDATE and DELETE on a project table: no TRUNCATE (it
--    bypasses the row triggers that keep usage counters true), REFERENCES, TRIGGER, nor PostgreSQL 17's
--    MAINTAIN (LOCK TABLE, CLUSTER, REINDEX: a client could stall every writer);
--  * every SECURITY DEFINER function pins search_path.
-- The privileges judged are all those the server knows for the kind of relation (read from acldefault(): the
-- seven of PostgreSQL 15, MAINTAIN too on 17), not a list written for one major.
CREATE OR REPLACE FUNCTION neotoma_ops.privilege_problems()
RETURNS TABLE (object text, grantee text, problem text, fix text)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = ''
AS $fn$
  WITH project_rel AS (
    SELECT c.oid, c.relkind, c.relowner, format('%I.%I', n.nspname, c.relname) AS name
      FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S')
       AND (n.nspname = 'neotoma_ops'
            OR (n.nspname = 'public' AND c.relname IN (
                  'sources', 'interpretation_runs', 'plans', 'storage_usage', 'usage_periods', 'usage_drift_log',
                  'usage_drift_log_id_seq', 'upload_queue', 'upload_queue_payloads', 'storage_usage_report')))
  ), client_readable (name, columns) AS (
    VALUES ('public.sources', NULL::text[]), ('public.interpretation_runs', NULL), ('public.plans', NULL),
           ('public.storage_usage', NULL), ('public.usage_periods', NULL), ('public.storage_usage_report', NULL),
           ('public.upload_queue', ARRAY['id', 'user_id', 'source_id', 'bucket', 'storage_path', 'content_hash',
                                         'byte_size', 'mime_type', 'status', 'retry_count', 'max_retries',
                                         'next_retry_at', 'error_message', 'created_at', 'updated_at',
                                         'completed_at', 'failed_at'])
  ), project_fn AS (
    SELECT p.oid, format('%I.%I(%s)', n.nspname, p.proname, pg_catalog.oidvectortypes(p.proargtypes)) AS name,
           p.prosecdef, p.proconfig
      FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname = 'neotoma_ops'
        OR format('%I.%I(%s)', n.nspname, p.proname, pg_catalog.oidvectortypes(p.proargtypes)) IN
           (SELECT o.identity FROM neotoma_ops.owned_objects o WHERE o.kind = 'function' AND o.source LIKE 'sql/%')
  ), client_callable (name) AS (
    VALUES ('public.billing_period_bounds(integer, timestamp with time zone)'), ('public.format_bytes(bigint)')
  ), table_privs AS (
    SELECT r.name, r.relkind, g.rolname AS grantee, pr.priv
      FROM project_rel r
     CROSS JOIN (SELECT rolname FROM pg_catalog.pg_roles WHERE rolname IN ('anon', 'authenticated', 'service_role')) g
     CROSS JOIN LATERAL (SELECT a.privilege_type
                           FROM pg_catalog.aclexplode(pg_catalog.acldefault(
                                  CASE WHEN r.relkind = 'S' THEN 's' ELSE 'r' END::"char", r.relowner)) a) pr (priv)
     WHERE CASE WHEN r.relkind = 'S' THEN pg_catalog.has_sequence_privilege(g.rolname, r.oid, pr.priv)
                ELSE pg_catalog.has_table_privilege(g.rolname, r.oid, pr.priv) END
  )
  SELECT r.name, NULL::text, 'row level security is disabled',
         format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY;', r.name)
    FROM project_rel r JOIN pg_catalog.pg_class c ON c.oid = r.oid
   WHERE r.relkind IN ('r', 'p') AND NOT c.relrowsecurity
  UNION ALL
  SELECT t.name, t.grantee, format('%s holds %s', t.grantee, t.priv),
         format('REVOKE %s ON %s FROM %I;', t.priv, t.name, t.grantee)
    FROM table_privs t
   WHERE t.grantee = 'anon'
      OR (t.grantee = 'authenticated'
          AND NOT (t.priv = 'SELECT' AND t.name IN (SELECT cr.name FROM client_readable cr WHERE cr.columns IS NULL)))
      OR (t.grantee = 'service_role' AND t.relkind <> 'S' AND t.priv NOT IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE'))
  UNION ALL
  SELECT r.name, 'authenticated', format('authenticated may read column %I', a.attname),
         format('REVOKE SELECT (%I) ON %s FROM authenticated;', a.attname, r.name)
    FROM project_rel r
    JOIN client_readable cr ON cr.name = r.name AND cr.columns IS NOT NULL
    JOIN pg_catalog.pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
   WHERE pg_catalog.has_column_privilege('authenticated', r.oid, a.attnum, 'SELECT')
     AND a.attname <> ALL (cr.columns)
  UNION ALL
  SELECT f.name, g.rolname, format('%s may execute it', g.rolname),
         format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC, %I;', f.name, g.rolname)
    FROM project_fn f
   CROSS JOIN (SELECT rolname FROM pg_catalog.pg_roles WHERE rolname IN ('anon', 'authenticated')) g
   WHERE pg_catalog.has_function_privilege(g.rolname, f.oid, 'EXECUTE')
     AND NOT (g.rolname = 'authenticated' AND f.name IN (SELECT name FROM client_callable))
  UNION ALL
  SELECT f.name, NULL, 'SECURITY DEFINER without a fixed search_path',
         format('ALTER FUNCTION %s SET search_path = '''';', f.name)
    FROM project_fn f
   WHERE f.prosecdef AND NOT EXISTS (SELECT 1 FROM unnest(f.proconfig) c WHERE c LIKE 'search\_path=%')
  ORDER BY 1, 2, 3
$fn$;

COMMENT ON FUNCTION neotoma_ops.privilege_problems() IS
  'Grants and settings of the project''s objects that its privilege rules forbid, each with the statement that fixes it.';

REVOKE ALL ON FUNCTION neotoma_ops.privilege_problems() FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.privilege_problems() TO service_role;
