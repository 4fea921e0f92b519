-- requires: 0008_upload-queue-edge-function
-- public.invoke_upload_queue_processor(): asks the `upload-queue-processor` Edge Function to store what is due in
-- the upload queue, through pg_net, and returns pg_net's request id at once (the call itself is asynchronous; its
-- answer, the function's JSON summary, lands in net._http_response). The project URL and the key are read from
-- Supabase Vault at every call (neotoma_ops.upload_queue_edge_function_secrets()), never kept anywhere else. A
-- missing secret, or a database without pg_net or Vault, is an error that says what to do: under pg_cron it shows
-- in cron.job_run_details and in cron_job_health(). Runs with its owner's rights (the operator's, who may read
-- Vault), so that service_role may ask for a drain now; it sends the key only to the URL stored beside it.
CREATE OR REPLACE FUNCTION public.invoke_upload_queue_processor()
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
  v_secrets record;
BEGIN
  v_secrets := neotoma_ops.upload_queue_edge_function_secrets();
  IF v_secrets.project_url IS NULL OR v_secrets.function_key IS NULL THEN
    RAISE EXCEPTION 'Vault secret % is missing',
      CASE WHEN v_secrets.project_url IS NULL THEN 'neotoma_ops_project_url' ELSE 'neotoma_ops_function_key' END
      USING ERRCODE = '55000',
            HINT = 'Store both and schedule the call: SELECT public.schedule_upload_queue_edge_function(''https://PROJECT.supabase.co'', ''<secret or service-role key>'');';
  END IF;
  -- timeout: Supabase answers a request within 150 s (its idle timeout), so pg_net never gives up first
  RETURN net.http_post(
    url := pg_catalog.rtrim(v_secrets.project_url, '/') || '/functions/v1/upload-queue-processor',
    body := pg_catalog.jsonb_build_object('caller', 'pg_cron'),
    params := '{}'::jsonb,
    headers := pg_catalog.jsonb_build_object('Content-Type', 'application/json',
                                             'Authorization', 'Bearer ' || v_secrets.function_key,
                                             'apikey', v_secrets.function_key),
    timeout_milliseconds := 150000
  );
END;
$$;

REVOKE ALL ON FUNCTION public.invoke_upload_queue_processor() FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.invoke_upload_queue_processor() TO service_role;
