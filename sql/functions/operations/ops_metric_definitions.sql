-- requires: 0007_operations
-- public.ops_metric_definitions() → (metric, type, help, labels)
-- What each metric of public.ops_metrics() is: its name (exported with the prefix neotoma_), Prometheus type
-- (counter: monotonic in the database; gauge), help text and label names. The worker's /metrics registers exactly
-- these, so a metric added here and in ops_metrics() is exported with nothing else to change (docs/metrics.md).
CREATE OR REPLACE FUNCTION public.ops_metric_definitions()
RETURNS TABLE (metric text, type text, help text, labels text[])
LANGUAGE sql
IMMUTABLE
SECURITY INVOKER
SET search_path = ''
AS $$
  SELECT d.metric, CASE WHEN d.metric LIKE '%\_total' THEN 'counter' ELSE 'gauge' END, d.help, d.labels
    FROM (VALUES
      ('upload_queue_jobs', 'Upload queue jobs by status.', ARRAY['status']),
      ('upload_queue_oldest_due_age_seconds', 'Age of the oldest pending upload job that is due (0 when none).', ARRAY[]::text[]),
      ('upload_queue_payload_bytes', 'Payload bytes the upload queue holds (the outage budget in use).', ARRAY[]::text[]),
      ('upload_queue_payload_bytes_cap', 'Most payload bytes the upload queue may hold (upload_queue_settings.payload_bytes_cap).', ARRAY[]::text[]),
      ('upload_queue_full_rejections_total', 'Uploads refused because the upload queue held its outage budget (PT503 UPLOAD_QUEUE_FULL).', ARRAY[]::text[]),
      ('upload_enqueued_total', 'Uploads that failed at ingest and were queued for retry.', ARRAY[]::text[]),
      ('upload_retries_total', 'Retry attempts started (jobs claimed by a worker).', ARRAY[]::text[]),
      ('upload_retry_failures_total', 'Retry attempts that failed, expired leases included.', ARRAY[]::text[]),
      ('upload_lease_expirations_total', 'Leases that expired before their worker completed or failed the job.', ARRAY[]::text[]),
      ('upload_terminal_failures_total', 'Upload jobs that reached status failed (retries exhausted or non-retryable).', ARRAY[]::text[]),
      ('upload_completed_total', 'Upload jobs stored and completed.', ARRAY[]::text[]),
      ('upload_requeued_total', 'Failed upload jobs put back in the queue by an operator.', ARRAY[]::text[]),
      ('upload_pruned_total', 'Completed upload jobs deleted after their retention.', ARRAY[]::text[]),
      ('interpretation_timeouts_total', 'Interpretation runs failed by the sweep with ''Timeout - no heartbeat''.', ARRAY[]::text[]),
      ('interpretation_stale_runs', 'Pending or running interpretation runs whose timeout has passed (not yet swept).', ARRAY[]::text[]),
      ('quota_rejections_total', 'Inserts refused by a quota, by resource (storage, interpretations, file_size).', ARRAY['resource']),
      ('storage_used_bytes', 'Bytes of sources in use, by plan.', ARRAY['plan']),
      ('storage_users', 'Users with a usage row, by plan.', ARRAY['plan']),
      ('storage_users_at_or_over_ratio', 'Users whose storage or interpretation use is at or over a share of their limit.', ARRAY['ratio', 'resource']),
      ('cron_job_last_success_age_seconds', 'Seconds since the last successful run of a pg_cron job (-1: never).', ARRAY['cron_job']),
      ('cron_job_failures_total', 'Failed runs of a pg_cron job in the retained run history.', ARRAY['cron_job']),
      ('cron_job_healthy', '1 when the pg_cron job is healthy (see /healthz), else 0.', ARRAY['cron_job']),
      ('doctor_problems', 'What doctor finds drifted from what neotoma-ops recorded it owns, by kind (neotoma_ops.doctor(false)).', ARRAY['kind'])
    ) AS d (metric, help, labels)
$$;

REVOKE ALL ON FUNCTION public.ops_metric_definitions() FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.ops_metric_definitions() TO service_role;
