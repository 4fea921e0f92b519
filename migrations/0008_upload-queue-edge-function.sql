-- Up Migration
-- Where pg_net is installed (Supabase), pg_cron asks the upload-queue-processor Edge Function every minute to store
-- what is due (public.invoke_upload_queue_processor(), which reads the URL and key from Vault). Elsewhere nothing is
-- scheduled and a notice says so: run `neotoma-ops worker` there. The `upload-queue-processor` SQL job keeps
-- rescuing expired leases either way.
DO $edge$
BEGIN
  IF pg_catalog.to_regprocedure('net.http_post(text,jsonb,jsonb,jsonb,integer)') IS NULL THEN
    RAISE NOTICE 'pg_net is not installed: the upload-queue-edge-function cron job is not scheduled. Run "neotoma-ops worker" to store queued uploads, or enable pg_net and run "SELECT cron.schedule(''upload-queue-edge-function'', ''* * * * *'', ''SELECT public.invoke_upload_queue_processor()'')".';
    RETURN;
  END IF;
  PERFORM cron.schedule('upload-queue-edge-function', '* * * * *', 'SELECT public.invoke_upload_queue_processor()');
END
$edge$;

-- Down Migration
SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'upload-queue-edge-function';
