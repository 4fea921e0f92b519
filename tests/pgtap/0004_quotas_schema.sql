-- Quotas: tables, columns, plans data, RLS and grants, triggers, cron jobs, and what anon / authenticated
-- can see and do (a user reads only their own usage; nobody but service_role writes).
BEGIN;
SELECT plan(53);

SELECT has_table('public', 'plans', 'plans exists');
SELECT has_table('public', 'storage_usage', 'storage_usage exists');
SELECT has_table('public', 'usage_periods', 'usage_periods exists');
SELECT has_table('public', 'usage_drift_log', 'usage_drift_log exists');
SELECT has_view('public', 'storage_usage_report', 'storage_usage_report exists');

SELECT col_type_is('public', 'storage_usage', 'user_id', 'uuid', 'storage_usage.user_id is uuid');
SELECT col_is_pk('public', 'storage_usage', 'user_id', 'storage_usage is keyed by user_id');
SELECT col_type_is('public', 'storage_usage', 'plan_id', 'text', 'plan_id is text');
SELECT col_default_is('public', 'storage_usage', 'plan_id', 'free', 'plan_id defaults to free');
SELECT fk_ok('public', 'storage_usage', 'plan_id', 'public', 'plans', 'id', 'plan_id references plans');
SELECT col_type_is('public', 'storage_usage', 'total_bytes', 'bigint', 'total_bytes is bigint');
SELECT col_type_is('public', 'storage_usage', 'total_sources', 'bigint', 'total_sources is bigint');
SELECT col_type_is('public', 'storage_usage', 'interpretation_count_month', 'integer', 'interpretation_count_month is integer');
SELECT col_type_is('public', 'storage_usage', 'billing_anchor_day', 'integer', 'billing_anchor_day is integer');
SELECT col_type_is('public', 'storage_usage', 'billing_period_start', 'timestamp with time zone', 'billing_period_start is timestamptz');
SELECT col_type_is('public', 'storage_usage', 'billing_period_end', 'timestamp with time zone', 'billing_period_end is timestamptz');
SELECT col_type_is('public', 'storage_usage', 'billing_month', 'text', 'billing_month is text');
SELECT col_type_is('public', 'storage_usage', 'last_calculated', 'timestamp with time zone', 'last_calculated is timestamptz');
SELECT col_type_is('public', 'storage_usage', 'storage_limit_bytes_override', 'bigint', 'per-user storage override is bigint');
SELECT col_type_is('public', 'plans', 'storage_limit_bytes', 'bigint', 'plans.storage_limit_bytes is bigint');
SELECT col_type_is('public', 'plans', 'interpretation_limit_month', 'integer', 'plans.interpretation_limit_month is integer');
SELECT col_type_is('public', 'plans', 'max_file_bytes', 'bigint', 'plans.max_file_bytes is bigint');

SELECT results_eq(
  $$SELECT id, storage_limit_bytes, interpretation_limit_month, max_file_bytes FROM public.plans ORDER BY id$$,
  $$VALUES ('enterprise'::text, NULL::bigint, NULL::integer, NULL::bigint),
           ('free', 1073741824, 100, 104857600),
           ('pro', 107374182400, 1000, 104857600)$$,
  'plans free / pro / enterprise as designed (NULL = unlimited)');

SELECT ok((SELECT bool_and(relrowsecurity) FROM pg_catalog.pg_class
            WHERE oid IN ('public.plans'::regclass, 'public.storage_usage'::regclass,
                          'public.usage_periods'::regclass, 'public.usage_drift_log'::regclass)),
          'RLS is enabled on every quota table');
SELECT policies_are('public', 'storage_usage',
  ARRAY['Service role full access - storage_usage', 'Users read own storage_usage'], 'storage_usage policies');
SELECT policies_are('public', 'usage_drift_log', ARRAY['Service role full access - usage_drift_log'],
  'usage_drift_log: service role only');
SELECT ok(NOT has_table_privilege('authenticated', 'public.storage_usage', 'INSERT,UPDATE,DELETE'),
          'authenticated cannot write storage_usage');
SELECT ok(NOT has_table_privilege('authenticated', 'public.plans', 'INSERT,UPDATE,DELETE'),
          'authenticated cannot write plans');
SELECT ok(NOT has_table_privilege('anon', 'public.storage_usage_report', 'SELECT')
          AND NOT has_table_privilege('anon', 'public.storage_usage', 'SELECT'),
          'anon cannot read usage');
SELECT ok(NOT has_table_privilege('authenticated', 'public.usage_drift_log', 'SELECT'),
          'authenticated cannot read the drift log');

SELECT ok(NOT has_function_privilege('authenticated', 'public.set_user_plan(uuid, text)', 'EXECUTE')
          AND NOT has_function_privilege('anon', 'public.set_user_plan(uuid, text)', 'EXECUTE'),
          'set_user_plan is not executable by clients');
SELECT ok(NOT has_function_privilege('authenticated', 'public.reconcile_storage_usage(uuid)', 'EXECUTE'),
          'reconcile_storage_usage is not executable by authenticated');
SELECT ok(NOT has_function_privilege('authenticated', 'public.reset_billing_periods(integer)', 'EXECUTE'),
          'reset_billing_periods is not executable by authenticated');
SELECT ok(NOT has_function_privilege('authenticated', 'public.refund_interpretation_quota(uuid, timestamp with time zone)', 'EXECUTE')
          AND NOT has_function_privilege('anon', 'public.refund_interpretation_quota(uuid, timestamp with time zone)', 'EXECUTE'),
          'refund_interpretation_quota is not executable by clients');
SELECT ok(has_function_privilege('service_role', 'public.refund_interpretation_quota(uuid, timestamp with time zone)', 'EXECUTE'),
          'refund_interpretation_quota is executable by service_role');
SELECT function_returns('public', 'refund_interpretation_quota', ARRAY['uuid', 'timestamp with time zone'], 'boolean',
                        'refund_interpretation_quota(uuid, timestamptz) returns boolean');
SELECT ok(NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                       WHERE n.nspname = 'neotoma_ops' AND p.proname LIKE 'quota%'
                         AND (has_function_privilege('authenticated', p.oid, 'EXECUTE')
                              OR has_function_privilege('anon', p.oid, 'EXECUTE'))),
          'no internal quota function is executable by clients');
SELECT ok(NOT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                       WHERE n.nspname IN ('public', 'neotoma_ops') AND p.prosecdef
                         AND (p.proname LIKE 'quota%' OR p.proname IN ('set_user_plan', 'reconcile_storage_usage',
                              'reset_billing_periods', 'refund_interpretation_quota'))
                         AND NOT coalesce(p.proconfig::text LIKE '%search_path=%', false)),
          'every SECURITY DEFINER quota function pins search_path');

SELECT has_trigger('public', 'sources', 'quota_sources_insert', 'sources has the insert quota trigger');
SELECT has_trigger('public', 'sources', 'quota_sources_update', 'sources has the update quota trigger');
SELECT has_trigger('public', 'sources', 'quota_sources_delete', 'sources has the delete quota trigger');
SELECT has_trigger('public', 'interpretation_runs', 'quota_interpretation_runs_insert',
                   'interpretation_runs has the insert quota trigger');

SELECT is(
  (SELECT string_agg(jobname || ' ' || schedule, ', ' ORDER BY jobname) FROM cron.job
    WHERE jobname IN ('billing-period-reset', 'storage-usage-reconcile'))::text,
  'billing-period-reset 7 * * * *, storage-usage-reconcile 17 3 * * *',
  'cron jobs registered: hourly billing reset, nightly reconcile');
SELECT ok((SELECT bool_and(command ~ '^SELECT public\.[a-z_]+\([0-9]*\)$') FROM cron.job
            WHERE jobname IN ('billing-period-reset', 'storage-usage-reconcile')),
          'each cron job is a single function call');

-- behaviour as clients: user A and user B have usage; A sees only A
SELECT public.set_user_plan('a1a1a1a1-0000-4000-8000-000000000001', 'free');
SELECT public.set_user_plan('b2b2b2b2-0000-4000-8000-000000000002', 'pro');
CREATE TEMP TABLE sec_results (k text PRIMARY KEY, v text);
GRANT ALL ON sec_results TO authenticated, anon;

SET LOCAL ROLE authenticated;
SELECT set_config('request.jwt.claims', '{"sub":"a1a1a1a1-0000-4000-8000-000000000001","role":"authenticated"}', true);
INSERT INTO sec_results SELECT 'report', string_agg(user_id::text || ':' || plan_id, ',') FROM public.storage_usage_report;
INSERT INTO sec_results SELECT 'usage_rows', count(*)::text FROM public.storage_usage;
DO $$ BEGIN
  UPDATE public.storage_usage SET total_bytes = 0;
  INSERT INTO sec_results VALUES ('update_usage', 'allowed');
EXCEPTION WHEN OTHERS THEN INSERT INTO sec_results VALUES ('update_usage', SQLSTATE); END $$;
DO $$ BEGIN
  UPDATE public.plans SET storage_limit_bytes = NULL;
  INSERT INTO sec_results VALUES ('update_plans', 'allowed');
EXCEPTION WHEN OTHERS THEN INSERT INTO sec_results VALUES ('update_plans', SQLSTATE); END $$;
DO $$ BEGIN
  PERFORM public.set_user_plan('a1a1a1a1-0000-4000-8000-000000000001', 'enterprise');
  INSERT INTO sec_results VALUES ('set_plan', 'allowed');
EXCEPTION WHEN OTHERS THEN INSERT INTO sec_results VALUES ('set_plan', SQLSTATE); END $$;
DO $$ BEGIN
  PERFORM public.reconcile_storage_usage('a1a1a1a1-0000-4000-8000-000000000001');
  INSERT INTO sec_results VALUES ('reconcile', 'allowed');
EXCEPTION WHEN OTHERS THEN INSERT INTO sec_results VALUES ('reconcile', SQLSTATE); END $$;
RESET ROLE;
SET LOCAL ROLE anon;
DO $$ BEGIN
  INSERT INTO sec_results SELECT 'anon_report', count(*)::text FROM public.storage_usage_report;
EXCEPTION WHEN OTHERS THEN INSERT INTO sec_results VALUES ('anon_report', SQLSTATE); END $$;
RESET ROLE;

SELECT is((SELECT v FROM sec_results WHERE k = 'report'), 'a1a1a1a1-0000-4000-8000-000000000001:free',
          'authenticated user A sees only their own row in storage_usage_report');
SELECT is((SELECT v FROM sec_results WHERE k = 'usage_rows'), '1', 'A reads only their own storage_usage row');
SELECT is((SELECT v FROM sec_results WHERE k = 'update_usage'), '42501', 'A cannot update storage_usage');
SELECT is((SELECT v FROM sec_results WHERE k = 'update_plans'), '42501', 'A cannot update plans');
SELECT is((SELECT v FROM sec_results WHERE k = 'set_plan'), '42501', 'A cannot execute set_user_plan');
SELECT is((SELECT v FROM sec_results WHERE k = 'reconcile'), '42501', 'A cannot execute reconcile_storage_usage');
SELECT is((SELECT v FROM sec_results WHERE k = 'anon_report'), '42501', 'anon sees nothing of storage_usage_report');
SELECT is((SELECT plan_id FROM public.storage_usage WHERE user_id = 'a1a1a1a1-0000-4000-8000-000000000001'), 'free',
          'the plan of A is unchanged');
SELECT is((SELECT count(*) FROM public.storage_usage_report
            WHERE user_id IN ('a1a1a1a1-0000-4000-8000-000000000001', 'b2b2b2b2-0000-4000-8000-000000000002'))::integer, 2,
          'the owner sees every row');

SELECT * FROM finish();
ROLLBACK;
