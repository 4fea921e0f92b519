-- requires: 0008_upload-queue-edge-function
-- public.schedule_upload_queue_edge_function(p_project_url, p_function_key) → the cron job's id
-- Lets pg_cron call the upload-queue-processor Edge Function every minute (job `upload-queue-edge-function`):
-- stores the settings given in Vault (created, or replaced when already there: run it again to rotate the key or
-- move the URL), then schedules the job, or leaves it as it is when scheduled already. A NULL argument keeps what
-- Vault holds. p_project_url is the project URL (https://PROJECT.supabase.co); p_function_key is a key the function
-- accepts: a secret key (sb_secret_…) or the service-role key of the project. Refused with 22023 (a malformed
-- argument, naming it) or 55000 (pg_net or Vault missing, a secret neither given nor stored), writing nothing.
-- Runs with the caller's rights: on Supabase, `postgres` may write Vault and schedule jobs.
CREATE OR REPLACE FUNCTION public.schedule_upload_queue_edge_function(p_project_url text DEFAULT NULL,
                                                                      p_function_key text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
  v_stored record;
  v_name   text;
  v_value  text;
BEGIN
  IF p_project_url IS NOT NULL AND p_project_url !~ '^https?://[^/?#\s]+/?$' THEN
    RAISE EXCEPTION 'p_project_url must be the project URL, e.g. https://PROJECT.supabase.co, got %',
      pg_catalog.quote_literal(p_project_url) USING ERRCODE = '22023',
      HINT = 'Pass the URL the project''s API answers on, without a path: the call goes to <p_project_url>/functions/v1/upload-queue-processor.';
  END IF;
  IF p_function_key IS NOT NULL AND (pg_catalog.btrim(p_function_key) = '' OR p_function_key ~ '\s') THEN
    RAISE EXCEPTION 'p_function_key must be a key without spaces, got % characters', pg_catalog.length(p_function_key)
      USING ERRCODE = '22023',
      HINT = 'Pass a secret key (sb_secret_…) or the service-role key of the project (Dashboard > Project Settings > API Keys).';
  END IF;
  v_stored := neotoma_ops.upload_queue_edge_function_secrets();  -- 55000 without pg_net or Vault
  IF coalesce(p_project_url, v_stored.project_url) IS NULL OR coalesce(p_function_key, v_stored.function_key) IS NULL THEN
    RAISE EXCEPTION '% is neither given nor stored in Vault',
      CASE WHEN coalesce(p_project_url, v_stored.project_url) IS NULL THEN 'p_project_url' ELSE 'p_function_key' END
      USING ERRCODE = '55000',
            HINT = 'Pass both the first time: SELECT public.schedule_upload_queue_edge_function(''https://PROJECT.supabase.co'', ''<secret or service-role key>'');';
  END IF;

  FOR v_name, v_value IN
    SELECT s.name, s.value
      FROM (VALUES (1, 'neotoma_ops_project_url', p_project_url), (2, 'neotoma_ops_function_key', p_function_key)) AS s (n, name, value)
     WHERE s.value IS NOT NULL
     ORDER BY s.n
  LOOP
    -- fixed statements (the values are parameters); dynamic so that the function is created where Vault is not
    EXECUTE 'SELECT CASE WHEN EXISTS (SELECT 1 FROM vault.secrets WHERE name = $1)
                         THEN (SELECT vault.update_secret(id, $2) FROM vault.secrets WHERE name = $1)::text
                         ELSE vault.create_secret($2, $1, ''neotoma-ops: upload-queue-processor Edge Function'')::text END'
      USING v_name, pg_catalog.btrim(v_value);
  END LOOP;

  RETURN coalesce(
    (SELECT j.jobid FROM cron.job AS j WHERE j.jobname = 'upload-queue-edge-function'),
    cron.schedule('upload-queue-edge-function', '* * * * *', 'SELECT public.invoke_upload_queue_processor()'));
END
$$;

-- the operator's alone: it handles Vault's secrets with the caller's rights, which no API role has on Supabase
REVOKE ALL ON FUNCTION public.schedule_upload_queue_edge_function(text, text) FROM PUBLIC, anon, authenticated, service_role;
