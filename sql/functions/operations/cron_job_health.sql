-- requires: 0007_operations
-- public.cron_job_health(): one row per pg_cron job of the project that is registered: the jobs its migrations
-- scheduled (neotoma_ops.owned_objects) and any job that calls one of its functions (upload-queue-edge-function,
-- scheduled on request), with its last run, last success, failures in the retained history, and whether it is
-- healthy: a job is unhealthy when its last run failed, or when it has not succeeded for longer than twice
-- its schedule's period (one missed run is tolerated), counted from its last success or, if it never ran,
-- from when the server started. A paused job (active = false) is reported unhealthy too.
CREATE OR REPLACE FUNCTION public.cron_job_health()
RETURNS TABLE (
  jobname         text,
  schedule        text,
  active          boolean,
  last_status     text,
  last_start      timestamptz,
  last_success    timestamptz,
  failures        bigint,
  allowed_gap     interval,
  healthy         boolean,
  reason          text
)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = ''
AS $$
  WITH jobs AS (
    SELECT j.jobid, j.jobname::text AS jobname, j.schedule::text AS schedule, j.active,
           2 * neotoma_ops.cron_schedule_period(j.schedule::text) AS allowed_gap
      FROM cron.job AS j
     WHERE j.database = pg_catalog.current_database()
       AND (j.jobname IN (SELECT o.identity FROM neotoma_ops.owned_objects AS o WHERE o.kind = 'cron job' AND o.definition IS NOT NULL)
            OR EXISTS (SELECT 1 FROM neotoma_ops.owned_objects AS o
                        WHERE o.kind = 'function' AND NOT o.preexisting AND o.definition IS NOT NULL
                          AND pg_catalog.strpos(j.command, pg_catalog.split_part(o.identity, '(', 1) || '(') > 0))
  ), runs AS (
    SELECT jobs.*,
           last.status AS last_status, last.start_time AS last_start,
           (SELECT max(d.end_time) FROM cron.job_run_details AS d
             WHERE d.jobid = jobs.jobid AND d.status = 'succeeded') AS last_success,
           (SELECT count(*) FROM cron.job_run_details AS d
             WHERE d.jobid = jobs.jobid AND d.status = 'failed') AS failures
      FROM jobs
      LEFT JOIN LATERAL (
        SELECT d.status, d.start_time FROM cron.job_run_details AS d
         WHERE d.jobid = jobs.jobid AND d.status IN ('succeeded', 'failed')
         ORDER BY d.start_time DESC NULLS LAST
         LIMIT 1
      ) AS last ON true
  )
  SELECT r.jobname, r.schedule, r.active, r.last_status, r.last_start, r.last_success, r.failures,
         r.allowed_gap,
         h.reason IS NULL AS healthy,
         h.reason
    FROM runs AS r
    CROSS JOIN LATERAL (
      SELECT CASE
               WHEN NOT r.active THEN 'job is paused (cron.job.active = false)'
               WHEN r.last_status = 'failed' THEN 'last run failed'
               WHEN pg_catalog.now() - coalesce(r.last_success, pg_catalog.pg_postmaster_start_time()) > r.allowed_gap
                 THEN 'no successful run for more than ' || r.allowed_gap::text
             END AS reason
    ) AS h
   ORDER BY r.jobname;
$$;

REVOKE ALL ON FUNCTION public.cron_job_health() FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.cron_job_health() TO service_role;
