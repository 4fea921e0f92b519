-- requires: 0008_upload-queue-edge-function
-- public.unschedule_upload_queue_edge_function() → whether a job was removed
-- Stops pg_cron calling the upload-queue-processor Edge Function (job `upload-queue-edge-function`); its Vault
-- secrets stay (DELETE FROM vault.secrets WHERE name LIKE 'neotoma\_ops\_%' removes them). Idempotent. Runs with
-- its owner's rights (the job is the operator's), so that service_role may stop it too.
CREATE OR REPLACE FUNCTION public.unschedule_upload_queue_edge_function()
RETURNS boolean
LANGUAGE sql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $$
  SELECT coalesce(bool_or(cron.unschedule(j.jobid)), false)
    FROM cron.job AS j
   WHERE j.jobname = 'upload-queue-edge-function';
$$;

REVOKE ALL ON FUNCTION public.unschedule_upload_queue_edge_function() FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.unschedule_upload_queue_edge_function() TO service_role;
