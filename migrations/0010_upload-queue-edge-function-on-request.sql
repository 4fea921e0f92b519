-- Up Migration
-- The Edge Function's cron job is scheduled on request, once its Vault secrets are stored
-- (public.schedule_upload_queue_edge_function()), not by the migration: scheduled before them it failed every
-- minute, and a project that runs the worker instead needs no job. The job 0008 scheduled is removed here.
DO $on_request$
BEGIN
  PERFORM cron.unschedule(j.jobid) FROM cron.job AS j WHERE j.jobname = 'upload-queue-edge-function';
  RAISE NOTICE 'The upload-queue-edge-function cron job is scheduled on request: to let pg_cron call the Edge Function every minute (needs pg_net and Vault), deploy it, then run SELECT public.schedule_upload_queue_edge_function(''https://PROJECT.supabase.co'', ''<secret or service-role key>''); a project that runs "neotoma-ops worker" instead needs nothing (docs/supabase.md).';
END
$on_request$;

-- Down Migration
-- as 0008 left it: the job scheduled wherever pg_net is installed
DO $as_0008$
BEGIN
  IF pg_catalog.to_regprocedure('net.http_post(text,jsonb,jsonb,jsonb,integer)') IS NOT NULL
     AND NOT EXISTS (SELECT 1 FROM cron.job AS j WHERE j.jobname = 'upload-queue-edge-function') THEN
    PERFORM cron.schedule('upload-queue-edge-function', '* * * * *', 'SELECT public.invoke_upload_queue_processor()');
  END IF;
END
$as_0008$;
