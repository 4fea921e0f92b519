-- public.invoke_upload_queue_processor(): asks the `upload-queue-processor` Edge Function to store what is due in
-- the upload queue, through pg_net, and returns pg_net's request id at once (the call itself is asynchronous; its
-- answer, the function's JSON summary, lands in net._http_response). The project URL and the service-role key
-- are read from Supabase Vault at every call (secrets `project_url` and `service_role_key`), never kept anywhere
-- else. A missing secret, or a database without pg_net, is an error that says what to do: under pg_cron it shows
-- in cron.job_run_details and in the cron job metrics.
CREATE OR REPLACE FUNCTION public.invoke_upload_queue_processor()
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
  v_url text;
  v_key text;
BEGIN
  IF pg_catalog.to_regprocedure('net.http_post(text,jsonb,jsonb,jsonb,integer)') IS NULL THEN
    RAISE EXCEPTION 'pg_net is not installed: the upload-queue-processor Edge Function cannot be called from the database'
      USING ERRCODE = '55000',
            HINT = 'Enable the pg_net extension (Supabase: Database > Extensions), or run "neotoma-ops worker" instead.';
  END IF;
  IF pg_catalog.to_regclass('vault.decrypted_secrets') IS NULL THEN
    RAISE EXCEPTION 'Supabase Vault is not available: the Edge Function''s URL and key are read from it'
      USING ERRCODE = '55000', HINT = 'Enable the supabase_vault extension.';
  END IF;
  EXECUTE 'SELECT max(decrypted_secret) FILTER (WHERE name = ''project_url''),
                  max(decrypted_secret) FILTER (WHERE name = ''service_role_key'')
             FROM vault.decrypted_secrets
            WHERE name IN (''project_url'', ''service_role_key'')'
     INTO v_url, v_key;
  IF coalesce(pg_catalog.btrim(v_url), '') = '' OR coalesce(pg_catalog.btrim(v_key), '') = '' THEN
    RAISE EXCEPTION 'Vault secret % is missing', CASE WHEN coalesce(pg_catalog.btrim(v_url), '') = '' THEN 'project_url' ELSE 'service_role_key' END
      USING ERRCODE = '55000',
            HINT = 'Store both once: SELECT vault.create_secret(''https://<project-ref>.supabase.co'', ''project_url''); '
                || 'SELECT vault.create_secret(''<service-role key>'', ''service_role_key'');';
  END IF;
  -- timeout: Supabase answers a request within 150 s (its idle timeout), so pg_net never gives up first
  RETURN net.http_post(
    url := pg_catalog.rtrim(pg_catalog.btrim(v_url), '/') || '/functions/v1/upload-queue-processor',
    body := pg_catalog.jsonb_build_object('caller', 'pg_cron'),
    params := '{}'::jsonb,
    headers := pg_catalog.jsonb_build_object('Content-Type', 'application/json', 'Authorization', 'Bearer ' || pg_catalog.btrim(v_key)),
    timeout_milliseconds := 150000
  );
END;
$$;

REVOKE ALL ON FUNCTION public.invoke_upload_queue_processor() FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.invoke_upload_queue_processor() TO service_role;
