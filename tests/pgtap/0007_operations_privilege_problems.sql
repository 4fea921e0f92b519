-- neotoma_ops.privilege_problems(): the privilege rules `neotoma-ops doctor` applies. Nothing on a migrated
-- database; each kind of breach reported with the statement that fixes it; every relation of the project's
-- schemas and every function its SQL files define is judged (a grant to anon on any of them is caught), over
-- every privilege the server knows (PostgreSQL 17's MAINTAIN included, with one more test there).
BEGIN;
SELECT current_setting('server_version_num')::integer >= 170000 AS has_maintain \gset
SELECT plan(9 + :'has_maintain'::boolean::integer);

SELECT is_empty($$SELECT * FROM neotoma_ops.privilege_problems()$$, 'a migrated database breaks no rule');

SAVEPOINT injected;
GRANT INSERT ON public.storage_usage TO anon;
SELECT results_eq($$SELECT problem, fix FROM neotoma_ops.privilege_problems()$$,
  $$VALUES ('anon holds INSERT', 'REVOKE INSERT ON public.storage_usage FROM anon;')$$,
  'a client write grant, with its REVOKE');
SELECT lives_ok($$REVOKE INSERT ON public.storage_usage FROM anon$$, 'the fix it gives runs');

GRANT TRUNCATE ON public.sources TO service_role;
GRANT SELECT (lease_token) ON public.upload_queue TO authenticated;
GRANT EXECUTE ON FUNCTION public.set_user_plan(uuid, text) TO authenticated;
ALTER FUNCTION neotoma_ops.quota_roll_periods(uuid[], timestamptz) RESET search_path;
ALTER TABLE public.usage_periods DISABLE ROW LEVEL SECURITY;
SELECT bag_eq($$SELECT object, problem FROM neotoma_ops.privilege_problems()$$,
  $$VALUES ('public.sources', 'service_role holds TRUNCATE'),
           ('public.upload_queue', 'authenticated may read column lease_token'),
           ('public.set_user_plan(uuid, text)', 'authenticated may execute it'),
           ('neotoma_ops.quota_roll_periods(uuid[], timestamp with time zone)',
            'SECURITY DEFINER without a fixed search_path'),
           ('public.usage_periods', 'row level security is disabled')$$,
  'service_role TRUNCATE, a hidden column, an internal function, an unpinned search_path and RLS off are all caught');
SELECT is((SELECT fix FROM neotoma_ops.privilege_problems() WHERE object = 'public.usage_periods'),
  'ALTER TABLE public.usage_periods ENABLE ROW LEVEL SECURITY;', 'each with its fix');
ROLLBACK TO SAVEPOINT injected;

-- every privilege of this server: granted to anon, each is reported; granted to service_role, each beyond
-- SELECT, INSERT, UPDATE and DELETE is
CREATE TEMP TABLE server_table_privilege ON COMMIT DROP AS
SELECT a.privilege_type AS priv
  FROM aclexplode(acldefault('r', 'pg_database_owner'::regrole)) a;
SAVEPOINT every_privilege;
DO $$
DECLARE p text;
BEGIN
  FOR p IN SELECT priv FROM server_table_privilege ORDER BY priv LOOP
    EXECUTE format('GRANT %s ON public.storage_usage TO anon', p);
    EXECUTE format('GRANT %s ON public.upload_queue TO service_role', p);
  END LOOP;
END $$;
SELECT set_eq($$SELECT problem FROM neotoma_ops.privilege_problems() WHERE object = 'public.storage_usage'$$,
  $$SELECT 'anon holds ' || priv FROM server_table_privilege$$,
  format('each table privilege of PostgreSQL %s granted to anon is reported (%s)',
         current_setting('server_version_num')::integer / 10000,
         (SELECT string_agg(priv, ', ' ORDER BY priv) FROM server_table_privilege)));
SELECT set_eq($$SELECT problem FROM neotoma_ops.privilege_problems() WHERE object = 'public.upload_queue'$$,
  $$SELECT 'service_role holds ' || priv FROM server_table_privilege
     WHERE priv NOT IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE')$$,
  'each table privilege beyond SELECT, INSERT, UPDATE and DELETE granted to service_role is reported');
ROLLBACK TO SAVEPOINT every_privilege;

-- PostgreSQL 17: MAINTAIN (VACUUM, ANALYZE, REINDEX, CLUSTER, LOCK TABLE), which GRANT ALL and so Supabase's
-- default privileges include
\if :has_maintain
SAVEPOINT maintain;
GRANT MAINTAIN ON public.storage_usage, public.sources TO anon;
SELECT results_eq($$SELECT object, problem, fix FROM neotoma_ops.privilege_problems()$$,
  $$VALUES ('public.sources', 'anon holds MAINTAIN', 'REVOKE MAINTAIN ON public.sources FROM anon;'),
           ('public.storage_usage', 'anon holds MAINTAIN', 'REVOKE MAINTAIN ON public.storage_usage FROM anon;')$$,
  'MAINTAIN held by a client role is reported, with its REVOKE');
ROLLBACK TO SAVEPOINT maintain;
\endif

-- coverage: anon on every relation of public and neotoma_ops and on every function of the project
CREATE TEMP TABLE granted ON COMMIT DROP AS
SELECT c.oid::regclass::text AS rel FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname IN ('public', 'neotoma_ops') AND c.relkind IN ('r', 'v', 'S')
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e');
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT rel FROM granted LOOP
    EXECUTE format('GRANT SELECT ON %s TO anon', r.rel);
  END LOOP;
  FOR r IN SELECT p.oid::regprocedure AS fn FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = 'neotoma_ops'
               OR format('%I.%I(%s)', n.nspname, p.proname, oidvectortypes(p.proargtypes))
                  IN (SELECT identity FROM neotoma_ops.owned_objects WHERE kind = 'function' AND source LIKE 'sql/%') LOOP
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO anon', r.fn);
  END LOOP;
END $$;
SELECT is((SELECT count(DISTINCT object)::integer FROM neotoma_ops.privilege_problems()
            WHERE grantee = 'anon' AND problem = 'anon holds SELECT'),
          (SELECT count(*)::integer FROM granted), 'a grant to anon on any relation of the project''s schemas is reported');
SELECT is((SELECT count(DISTINCT object)::integer FROM neotoma_ops.privilege_problems()
            WHERE grantee = 'anon' AND problem = 'anon may execute it'),
          (SELECT count(*)::integer FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
            WHERE n.nspname = 'neotoma_ops'
               OR format('%I.%I(%s)', n.nspname, p.proname, oidvectortypes(p.proargtypes))
                  IN (SELECT identity FROM neotoma_ops.owned_objects WHERE kind = 'function' AND source LIKE 'sql/%')),
          'EXECUTE for anon on any function of the project is reported');

SELECT * FROM finish();
ROLLBACK;
