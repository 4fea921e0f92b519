-- public.ops_metrics(): the operational state as (metric, labels, value) rows, for /metrics, `status` and
-- alerting. Cheap enough to call every 15 s on a large database: queue depths are counted through the
-- queue's partial indexes (pending, in progress, failed) and the completed count is bounded by the
-- retention of completed jobs; event totals come from maintained counters (rows and sequences, never a
-- count over history); stale runs through the active-runs index; storage figures scan storage_usage
-- (one row per user) once.
--
-- Metric names are Prometheus-style without the neotoma_ prefix the worker adds; see docs/metrics.md.
CREATE OR REPLACE FUNCTION public.ops_metrics()
RETURNS TABLE (metric text, labels jsonb, value double precision)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = ''
AS $$
  -- upload queue depth by status (every status, zeros included)
  SELECT 'upload_queue_jobs', pg_catalog.jsonb_build_object('status', s.status),
         (SELECT count(*) FROM public.upload_queue AS q WHERE q.status = s.status)::double precision
    FROM unnest(ARRAY['pending', 'in_progress', 'failed', 'completed']) AS s(status)
  UNION ALL
  SELECT 'upload_queue_oldest_due_age_seconds', '{}'::jsonb,
         coalesce(extract(epoch FROM pg_catalog.now() - (
           SELECT q.next_retry_at FROM public.upload_queue AS q
            WHERE q.status = 'pending' AND q.next_retry_at <= pg_catalog.now()
            ORDER BY q.next_retry_at LIMIT 1)), 0)::double precision
  UNION ALL
  SELECT c.counter, '{}'::jsonb, c.value::double precision
    FROM neotoma_ops.upload_queue_counter_totals() AS c
  UNION ALL
  -- interpretation timeouts
  SELECT 'interpretation_timeouts_total', '{}'::jsonb, c.value::double precision
    FROM neotoma_ops.interpretation_counters AS c WHERE c.counter = 'timeouts_total'
  UNION ALL
  SELECT 'interpretation_stale_runs', '{}'::jsonb,
         (SELECT count(*) FROM public.interpretation_runs AS r
           WHERE r.status IN ('pending', 'running') AND r.timeout_at < pg_catalog.now())::double precision
  UNION ALL
  -- quota rejections: sequences, so a refused (rolled back) statement still counts
  SELECT 'quota_rejections_total', '{"resource":"storage"}'::jsonb,
         (SELECT CASE WHEN s.is_called THEN s.last_value ELSE 0 END FROM neotoma_ops.quota_rejections_storage AS s)::double precision
  UNION ALL
  SELECT 'quota_rejections_total', '{"resource":"interpretations"}'::jsonb,
         (SELECT CASE WHEN s.is_called THEN s.last_value ELSE 0 END FROM neotoma_ops.quota_rejections_interpretations AS s)::double precision
  UNION ALL
  SELECT 'quota_rejections_total', '{"resource":"file_size"}'::jsonb,
         (SELECT CASE WHEN s.is_called THEN s.last_value ELSE 0 END FROM neotoma_ops.quota_rejections_file_size AS s)::double precision
  UNION ALL
  -- storage in use and users near or over their limits, one pass over storage_usage
  (WITH usage AS (
     SELECT u.plan_id, u.total_bytes,
            u.total_bytes::numeric / NULLIF(coalesce(u.storage_limit_bytes_override, p.storage_limit_bytes), 0) AS storage_ratio,
            u.interpretation_count_month::numeric
              / NULLIF(coalesce(u.interpretation_limit_month_override, p.interpretation_limit_month), 0) AS interp_ratio
       FROM public.storage_usage AS u
       JOIN public.plans AS p ON p.id = u.plan_id
   ), by_plan AS (
     SELECT p.id AS plan_id, coalesce(sum(u.total_bytes), 0) AS bytes, count(u.plan_id) AS users
       FROM public.plans AS p LEFT JOIN usage AS u ON u.plan_id = p.id
      GROUP BY p.id
   )
   SELECT 'storage_used_bytes', pg_catalog.jsonb_build_object('plan', b.plan_id), b.bytes::double precision FROM by_plan AS b
   UNION ALL
   SELECT 'storage_used_bytes', pg_catalog.jsonb_build_object('plan', 'all'), (SELECT sum(b.bytes) FROM by_plan AS b)::double precision
   UNION ALL
   SELECT 'storage_users', pg_catalog.jsonb_build_object('plan', b.plan_id), b.users::double precision FROM by_plan AS b
   UNION ALL
   SELECT 'storage_users_at_or_over_ratio', pg_catalog.jsonb_build_object('ratio', t.ratio::text, 'resource', 'storage'),
          (SELECT count(*) FROM usage AS u WHERE u.storage_ratio >= t.ratio)::double precision
     FROM (VALUES (0.8), (1.0)) AS t(ratio)
   UNION ALL
   SELECT 'storage_users_at_or_over_ratio', pg_catalog.jsonb_build_object('ratio', t.ratio::text, 'resource', 'interpretations'),
          (SELECT count(*) FROM usage AS u WHERE u.interp_ratio >= t.ratio)::double precision
     FROM (VALUES (0.8), (1.0)) AS t(ratio))
  UNION ALL
  -- pg_cron jobs of the project
  SELECT 'cron_job_last_success_age_seconds', pg_catalog.jsonb_build_object('job', h.jobname),
         coalesce(extract(epoch FROM pg_catalog.now() - h.last_success), -1)::double precision
    FROM public.cron_job_health() AS h
  UNION ALL
  SELECT 'cron_job_failures_total', pg_catalog.jsonb_build_object('job', h.jobname), h.failures::double precision
    FROM public.cron_job_health() AS h
  UNION ALL
  SELECT 'cron_job_healthy', pg_catalog.jsonb_build_object('job', h.jobname), CASE WHEN h.healthy THEN 1 ELSE 0 END::double precision
    FROM public.cron_job_health() AS h;
$$;

REVOKE ALL ON FUNCTION public.ops_metrics() FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.ops_metrics() TO service_role;
