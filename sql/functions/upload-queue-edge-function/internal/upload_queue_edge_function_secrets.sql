-- requires: 0008_upload-queue-edge-function
-- neotoma_ops.upload_queue_edge_function_secrets() → (project_url, function_key)
-- The two Vault secrets the Edge Function's cron job uses: `neotoma_ops_project_url` (https://PROJECT.supabase.co)
-- and `neotoma_ops_function_key` (a secret key or the service-role key the function accepts), each NULL when not
-- stored. Raises 55000 when pg_net or Vault is not installed, saying what to do. Reads with the caller's rights.
CREATE OR REPLACE FUNCTION neotoma_ops.upload_queue_edge_function_secrets(OUT project_url text, OUT function_key text)
LANGUAGE plpgsql
STABLE
SECURITY INVOKER
SET search_path = ''
AS $$
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
  -- a fixed query (no input in it); dynamic so that the function is created where Vault is not installed
  EXECUTE 'SELECT max(decrypted_secret) FILTER (WHERE name = $1), max(decrypted_secret) FILTER (WHERE name = $2)
             FROM vault.decrypted_secrets WHERE name IN ($1, $2)'
     INTO project_url, function_key
    USING 'neotoma_ops_project_url', 'neotoma_ops_function_key';
  project_url := NULLIF(pg_catalog.btrim(project_url), '');
  function_key := NULLIF(pg_catalog.btrim(function_key), '');
END
$$;

-- the operator's alone: it handles Vault's secrets with the caller's rights, which no API role has on Supabase
REVOKE ALL ON FUNCTION neotoma_ops.upload_queue_edge_function_secrets() FROM PUBLIC, anon, authenticated, service_role;
