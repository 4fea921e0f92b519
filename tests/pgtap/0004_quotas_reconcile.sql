-- reconcile_storage_usage: drift made with the accounting trigger disabled (as the table's owner can, inside
-- this transaction only) is corrected from sources and logged in usage_drift_log; a user with sources but no
-- counter row gets one born true (not logged: nothing was wrong); a clean run corrects and logs nothing.
BEGIN;
SELECT plan(9);

CREATE FUNCTION pg_temp.usage(u uuid) RETURNS text LANGUAGE sql AS $$
  SELECT coalesce((SELECT total_bytes || '/' || total_sources FROM public.storage_usage WHERE user_id = u), 'none') $$;

INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
SELECT '31000000-0000-4000-8000-000000000001', md5('r' || i) || md5('r.' || i), 'text/plain', 'k', 100 FROM generate_series(1, 3) i;

ALTER TABLE public.sources DISABLE TRIGGER quota_sources_insert;
INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
SELECT '31000000-0000-4000-8000-000000000001', md5('x' || i) || md5('x.' || i), 'text/plain', 'k', 1000 FROM generate_series(1, 2) i;
INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
VALUES ('32000000-0000-4000-8000-000000000002', md5('y') || md5('y.'), 'text/plain', 'k', 77);
ALTER TABLE public.sources ENABLE TRIGGER quota_sources_insert;

SELECT is(pg_temp.usage('31000000-0000-4000-8000-000000000001'), '300/3', 'writes with triggers bypassed made the counter drift');
SELECT is(public.reconcile_storage_usage('31000000-0000-4000-8000-000000000001'), 1, 'reconcile of one user corrects it');
SELECT is(pg_temp.usage('31000000-0000-4000-8000-000000000001'), '2300/5', 'the counter equals SUM(file_size) / COUNT(*)');
SELECT results_eq($$SELECT old_total_bytes, new_total_bytes, bytes_delta, sources_delta FROM public.usage_drift_log
                     WHERE user_id = '31000000-0000-4000-8000-000000000001'$$,
  $$VALUES (300::bigint, 2300::bigint, 2000::bigint, 2::bigint)$$, 'the correction is logged in usage_drift_log');
SELECT isnt((SELECT last_calculated FROM public.storage_usage WHERE user_id = '31000000-0000-4000-8000-000000000001'), NULL,
  'last_calculated is set');

UPDATE public.storage_usage SET total_bytes = 1 WHERE user_id = '31000000-0000-4000-8000-000000000001';
SELECT is(public.reconcile_storage_usage() >= 1, true, 'a full run corrects every drifted user');
SELECT is(pg_temp.usage('31000000-0000-4000-8000-000000000001') || ' ' || pg_temp.usage('32000000-0000-4000-8000-000000000002'),
  '2300/5 77/1', 'both users exact after the full run (the one without a counter row got it, born true)');
SELECT is(public.reconcile_storage_usage(), 0, 'a second full run corrects nothing');
SELECT is((SELECT count(*)::integer FROM public.usage_drift_log
            WHERE user_id IN ('31000000-0000-4000-8000-000000000001', '32000000-0000-4000-8000-000000000002')), 2,
  'only non-zero corrections are logged');

SELECT * FROM finish();
ROLLBACK;
