-- requires: 0007_operations
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
         neotoma_ops.upload_queue_job_count(s.status)::double precision
    FROM unnest(ARRAY['pending', 'in_progress', 'failed', 'completed']) AS s(status)
  UNION ALL
  SELECT 'upload_queue_oldest_due_age_seconds', '{}'::jsonb,
         coalesce(extract(epoch FROM pg_catalog.now() - (
           SELECT q.next_retry_at FROM public.upload_queue AS q
            WHERE q.status = 'pending' AND q.next_retry_at <= pg_catalog.now()
            ORDER BY q.next_retry_at LIMIT 1)), 0)::double precision
  UNION ALL
  -- the outage budget: payload bytes held (the counter is born with the first payload write; until then, the sum)
  SELECT 'upload_queue_payload_bytes', '{}'::jsonb,
         coalesce(neotoma_ops.upload_queue_payload_bytes_held(),
                  (SELECT sum(pg_catalog.octet_length(p.content)) FROM public.upload_queue_payloads AS p), 0)::double precision
  UNION ALL
  SELECT 'upload_queue_payload_bytes_cap', '{}'::jsonb,
         (SELECT s.payload_bytes_cap FROM neotoma_ops.upload_queue_settings AS s WHERE s.singleton)::double precision
  UNION ALL
  SELECT 'upload_queue_full_rejections_total', '{}'::jsonb,
         (SELECT CASE WHEN s.is_called THEN s.last_value ELSE 0 END
            FROM neotoma_ops.upload_queue_full_rejections AS s)::double precision
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
           WHERE neotoma_ops.interpretation_run_is_stale(r.status, r.timeout_at))::double precision
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
  (WITH by_plan AS MATERIALIZED (
     -- one pass: per plan, bytes, users and users at or over 80 % / 100 % of their (possibly overridden) limits
     SELECT p.id AS plan_id,
            coalesce(sum(u.total_bytes), 0) AS bytes,
            count(u.user_id) AS users,
            count(*) FILTER (WHERE l.storage > 0 AND u.total_bytes::float8 >= 0.8 * l.storage) AS storage_80,
            count(*) FILTER (WHERE l.storage > 0 AND u.total_bytes::float8 >= l.storage) AS storage_100,
            count(*) FILTER (WHERE l.interp > 0 AND u.interpretation_count_month::float8 >= 0.8 * l.interp) AS interp_80,
            count(*) FILTER (WHERE l.interp > 0 AND u.interpretation_count_month::float8 >= l.interp) AS interp_100
       FROM public.plans AS p
       LEFT JOIN public.storage_usage AS u ON u.plan_id = p.id
       LEFT JOIN LATERAL (
         SELECT neotoma_ops.effective_limit(u.storage_limit_bytes_override, p.storage_limit_bytes)::float8 AS storage,
                neotoma_ops.effective_limit(u.interpretation_limit_month_override, p.interpretation_limit_month)::float8 AS interp
       ) AS l ON true
      GROUP BY p.id
   )
   SELECT 'storage_used_bytes', pg_catalog.jsonb_build_object('plan', b.plan_id), b.bytes::double precision FROM by_plan AS b
   UNION ALL
   SELECT 'storage_used_bytes', '{"plan":"all"}'::jsonb, (SELECT sum(b.bytes) FROM by_plan AS b)::double precision
   UNION ALL
   SELECT 'storage_users', pg_catalog.jsonb_build_object('plan', b.plan_id), b.users::double precision FROM by_plan AS b
   UNION ALL
   SELECT 'storage_users_at_or_over_ratio', t.labels::jsonb, t.n::double precision
     FROM (SELECT sum(b.storage_80) AS s80, sum(b.storage_100) AS s100, sum(b.interp_80) AS i80, sum(b.interp_100) AS i100
             FROM by_plan AS b) AS totals
    CROSS JOIN LATERAL (VALUES
      ('{"ratio":"0.8","resource":"storage"}', totals.s80),
      ('{"ratio":"1.0","resource":"storage"}', totals.s100),
      ('{"ratio":"0.8","resource":"interpretations"}', totals.i80),
      ('{"ratio":"1.0","resource":"interpretations"}', totals.i100)) AS t(labels, n))
  UNION ALL
  -- pg_cron jobs of the project
  (WITH h AS MATERIALIZED (SELECT * FROM public.cron_job_health())
   SELECT 'cron_job_last_success_age_seconds', pg_catalog.jsonb_build_object('cron_job', h.jobname),
          coalesce(extract(epoch FROM pg_catalog.now() - h.last_success), -1)::double precision
     FROM h
   UNION ALL
   SELECT 'cron_job_failures_total', pg_catalog.jsonb_build_object('cron_job', h.jobname), h.failures::double precision
     FROM h
   UNION ALL
   SELECT 'cron_job_healthy', pg_catalog.jsonb_build_object('cron_job', h.jobname), CASE WHEN h.healthy THEN 1 ELSE 0 END::double precision
     FROM h)
  UNION ALL
  -- drift from what the project recorded it owns, by kind (every kind, zeros included; the cheap checks only)
  (WITH d AS MATERIALIZED (SELECT x.kind FROM neotoma_ops.doctor(false) AS x)
   SELECT 'doctor_problems', pg_catalog.jsonb_build_object('kind', k.kind),
          (SELECT count(*) FROM d WHERE d.kind = k.kind)::double precision
     FROM unnest(ARRAY['missing', 'altered', 'disabled', 'invalid', 'not validated', 'row security', 'paused', 'grants',
                       'cron job failing', 'storage limit']) AS k (kind));
$$;

REVOKE ALL ON FUNCTION public.ops_metrics() FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.ops_metrics() TO service_role;
