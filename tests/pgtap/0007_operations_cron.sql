-- Operations: the cron-history purge, schedule periods and pg_cron job health.
BEGIN;
SELECT plan(19);

SELECT is(neotoma_ops.cron_schedule_period('*/5 * * * *'), interval '5 minutes', '*/5 runs every 5 minutes');
SELECT is(neotoma_ops.cron_schedule_period('7 * * * *'), interval '1 hour', 'minute-of-hour runs hourly');
SELECT is(neotoma_ops.cron_schedule_period('23 3 * * *'), interval '1 day', 'minute+hour runs daily');
SELECT is(neotoma_ops.cron_schedule_period('30 seconds'), interval '30 seconds', 'pg_cron seconds syntax');
SELECT is(neotoma_ops.cron_schedule_period('0 0 1 * *'), interval '31 days', 'day-of-month schedules: up to 31 days');

SELECT is((SELECT command FROM cron.job WHERE jobname = 'cron-history-purge'),
  'SELECT public.purge_cron_history()', 'cron-history-purge is one call of purge_cron_history()');
SELECT is((SELECT neotoma_ops.cron_schedule_period(schedule) FROM cron.job WHERE jobname = 'cron-history-purge'),
  interval '1 day', 'cron-history-purge runs daily');
SELECT is((SELECT cron_history_retention FROM neotoma_ops.ops_settings), interval '7 days', 'history is kept 7 days by default');

-- purge: old finished runs go, recent ones and unfinished ones stay
INSERT INTO cron.job_run_details (jobid, runid, command, status, start_time, end_time)
SELECT (SELECT jobid FROM cron.job WHERE jobname = 'cron-history-purge'), 900000000 + g, 'x', 'succeeded',
       now() - interval '8 days', now() - interval '8 days'
  FROM generate_series(1, 12000) AS g;
INSERT INTO cron.job_run_details (jobid, runid, command, status, start_time, end_time) VALUES
  ((SELECT jobid FROM cron.job WHERE jobname = 'cron-history-purge'), 910000001, 'x', 'succeeded', now() - interval '6 days', now() - interval '6 days'),
  ((SELECT jobid FROM cron.job WHERE jobname = 'cron-history-purge'), 910000002, 'x', 'running', now() - interval '9 days', NULL);

SELECT is(public.purge_cron_history(), 12000::bigint, 'the purge deletes the 12,000 runs older than 7 days (over two batches)');
SELECT is((SELECT count(*)::int FROM cron.job_run_details WHERE runid IN (910000001, 910000002)), 2,
  'a 6-day-old run and an unfinished run are kept');
SELECT is(public.purge_cron_history(interval '5 days'), 1::bigint, 'an explicit retention overrides the setting');
SELECT throws_ok($$SELECT public.purge_cron_history(interval '5 minutes')$$, '22023',
  'p_retention must be at least 1 hour, got 00:05:00', 'a retention under 1 hour is refused');

-- health of the job
DELETE FROM cron.job_run_details WHERE jobid = (SELECT jobid FROM cron.job WHERE jobname = 'cron-history-purge');
INSERT INTO cron.job_run_details (jobid, runid, command, status, start_time, end_time) VALUES
  ((SELECT jobid FROM cron.job WHERE jobname = 'cron-history-purge'), 920000001, 'x', 'succeeded', now() - interval '1 hour', now() - interval '1 hour');
SELECT is((SELECT healthy FROM public.cron_job_health() WHERE jobname = 'cron-history-purge'), true,
  'a daily job that succeeded an hour ago is healthy');

INSERT INTO cron.job_run_details (jobid, runid, command, status, start_time, end_time, return_message) VALUES
  ((SELECT jobid FROM cron.job WHERE jobname = 'cron-history-purge'), 920000002, 'x', 'failed', now(), now(), 'boom');
SELECT is((SELECT reason FROM public.cron_job_health() WHERE jobname = 'cron-history-purge'), 'last run failed',
  'a job whose last run failed is unhealthy, with the reason');
SELECT is((SELECT failures FROM public.cron_job_health() WHERE jobname = 'cron-history-purge'), 1::bigint,
  'failures are counted');

DELETE FROM cron.job_run_details WHERE runid = 920000002;
UPDATE cron.job_run_details SET start_time = now() - interval '3 days', end_time = now() - interval '3 days'
 WHERE runid = 920000001;
SELECT alike((SELECT reason FROM public.cron_job_health() WHERE jobname = 'cron-history-purge'),
  'no successful run for more than%', 'a daily job not succeeded for 3 days is unhealthy');

-- cron.alter_job: what the migrating role may do on Supabase (writes to cron.job are revoked there)
SELECT cron.alter_job(jobid, active := false) FROM cron.job WHERE jobname = 'cron-history-purge';
SELECT is((SELECT reason FROM public.cron_job_health() WHERE jobname = 'cron-history-purge'),
  'job is paused (cron.job.active = false)', 'a paused job is unhealthy');

-- not for clients
SELECT ok(NOT has_function_privilege('authenticated', 'public.purge_cron_history(interval)', 'EXECUTE')
          AND NOT has_function_privilege('anon', 'public.purge_cron_history(interval)', 'EXECUTE'),
  'clients cannot purge cron history');
SELECT ok(NOT has_function_privilege('authenticated', 'public.cron_job_health()', 'EXECUTE')
          AND NOT has_function_privilege('anon', 'public.cron_job_health()', 'EXECUTE'),
  'clients cannot read cron job health');

SELECT * FROM finish();
ROLLBACK;
