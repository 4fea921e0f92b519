-- ops_metrics(): shape, every documented metric present, counters surviving rollbacks, not for clients.
BEGIN;
SELECT plan(10);

SELECT function_returns('public', 'ops_metrics', ARRAY[]::text[], 'setof record', 'ops_metrics() returns a set of rows');
SELECT set_eq(
  $$SELECT DISTINCT metric FROM public.ops_metrics()$$,
  ARRAY['upload_queue_jobs', 'upload_queue_oldest_due_age_seconds', 'upload_queue_payload_bytes',
        'upload_queue_payload_bytes_cap', 'upload_queue_full_rejections_total', 'upload_enqueued_total', 'upload_retries_total',
        'upload_retry_failures_total', 'upload_lease_expirations_total', 'upload_terminal_failures_total',
        'upload_completed_total', 'upload_requeued_total', 'upload_pruned_total', 'interpretation_timeouts_total',
        'interpretation_stale_runs', 'quota_rejections_total', 'storage_used_bytes', 'storage_users',
        'storage_users_at_or_over_ratio', 'cron_job_last_success_age_seconds', 'cron_job_failures_total',
        'cron_job_healthy', 'doctor_problems'],
  'every documented metric is reported');
SELECT set_eq($$SELECT DISTINCT metric FROM public.ops_metrics()$$, $$SELECT metric FROM public.ops_metric_definitions()$$,
  'ops_metric_definitions() defines exactly the metrics ops_metrics() reports');
SELECT set_eq(
  $$SELECT labels ->> 'status' FROM public.ops_metrics() WHERE metric = 'upload_queue_jobs'$$,
  ARRAY['pending', 'in_progress', 'failed', 'completed'], 'queue depth is reported for every status');
SELECT set_eq(
  $$SELECT labels ->> 'cron_job' FROM public.ops_metrics() WHERE metric = 'cron_job_healthy'$$,
  $$SELECT identity FROM neotoma_ops.owned_objects WHERE kind = 'cron job' AND definition IS NOT NULL$$,
  'every pg_cron job of the project is reported, by the label cron_job');

-- a refused insert rolls back but its rejection is counted
CREATE TEMP TABLE before AS
  SELECT value FROM public.ops_metrics() WHERE metric = 'quota_rejections_total' AND labels ->> 'resource' = 'file_size';
SELECT throws_ok(
  $$INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
    VALUES ('41414141-4141-4141-4141-414141414141', repeat('4', 64), 'text/plain', 'x', 1099511627776)$$,
  'PT413', NULL, 'a 1 TiB file is refused');
SELECT is(
  (SELECT value FROM public.ops_metrics() WHERE metric = 'quota_rejections_total' AND labels ->> 'resource' = 'file_size'),
  (SELECT value + 1 FROM before), 'the refused statement is counted once');

-- stale runs are counted before the sweep fails them
INSERT INTO public.sources (id, user_id, content_hash, mime_type, storage_url, file_size)
VALUES ('41414141-0000-4000-8000-000000000001', '41414141-4141-4141-4141-414141414141', repeat('5', 64), 'text/plain', 'x', 1);
INSERT INTO public.interpretation_runs (user_id, source_id, interpretation_config, status)
VALUES ('41414141-4141-4141-4141-414141414141', '41414141-0000-4000-8000-000000000001', '{}', 'running');
UPDATE public.interpretation_runs SET timeout_at = now() - interval '1 minute'
 WHERE user_id = '41414141-4141-4141-4141-414141414141';
SELECT is((SELECT value FROM public.ops_metrics() WHERE metric = 'interpretation_stale_runs'), 1::double precision,
  'a run past its timeout is reported stale');

SELECT ok(NOT has_function_privilege('authenticated', 'public.ops_metrics()', 'EXECUTE'), 'authenticated cannot call ops_metrics()');
SELECT ok(NOT has_function_privilege('anon', 'public.ops_metrics()', 'EXECUTE'), 'anon cannot call ops_metrics()');

SELECT * FROM finish();
ROLLBACK;
