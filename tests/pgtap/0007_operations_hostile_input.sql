-- Hostile input regressions found by tests/ts/hostile-input.test.ts: a NULL amount given to the quota
-- counters used to loop five times and end in a misleading 40001 "did not settle"; it is bad input (22023)
-- and writes nothing. Valid charges are unaffected.
BEGIN;
SELECT plan(6);

SET LOCAL ROLE service_role;
SELECT throws_ok($$SELECT neotoma_ops.quota_charge_storage('51000000-0000-4000-8000-000000000001', NULL, 1, NULL)$$,
  '22023', NULL, 'quota_charge_storage with NULL p_bytes is bad input (22023), not a serialization failure');
SELECT throws_ok($$SELECT neotoma_ops.quota_charge_storage('51000000-0000-4000-8000-000000000001', 1, NULL, NULL)$$,
  '22023', NULL, 'quota_charge_storage with NULL p_sources is bad input (22023)');
SELECT throws_ok($$SELECT neotoma_ops.quota_charge_interpretations('51000000-0000-4000-8000-000000000001', NULL)$$,
  '22023', NULL, 'quota_charge_interpretations with NULL p_count is bad input (22023)');
SELECT is((SELECT count(*)::integer FROM public.storage_usage WHERE user_id = '51000000-0000-4000-8000-000000000001'), 0,
  'the refused calls wrote nothing');

SELECT neotoma_ops.quota_charge_storage('51000000-0000-4000-8000-000000000001', 10, 1, 10);
SELECT neotoma_ops.quota_charge_interpretations('51000000-0000-4000-8000-000000000001', 1);
SELECT is((SELECT total_bytes || '/' || total_sources FROM public.storage_usage
            WHERE user_id = '51000000-0000-4000-8000-000000000001'), '10/1', 'a valid storage charge still counts');
SELECT is((SELECT interpretation_count_month FROM public.storage_usage
            WHERE user_id = '51000000-0000-4000-8000-000000000001'), 1, 'a valid interpretation charge still counts');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
