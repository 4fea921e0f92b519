-- Operations: the call of the upload-queue-processor Edge Function through pg_net, with its URL and key from
-- Vault. pg_net and Vault are not installed here: net.http_post (pg_net's signature) and vault.decrypted_secrets
-- are stood in for inside this transaction, and the stand-in records what it was asked to send.
BEGIN;
SELECT plan(13);

SELECT is((SELECT count(*)::int FROM cron.job WHERE jobname = 'upload-queue-edge-function'), 0,
  'without pg_net the migration scheduled no Edge Function call');
SELECT throws_ok($$SELECT public.invoke_upload_queue_processor()$$, '55000',
  'pg_net is not installed: the upload-queue-processor Edge Function cannot be called from the database',
  'without pg_net the call says so');
SELECT ok(NOT has_function_privilege('anon', 'public.invoke_upload_queue_processor()', 'EXECUTE'), 'anon may not call it');
SELECT ok(NOT has_function_privilege('authenticated', 'public.invoke_upload_queue_processor()', 'EXECUTE'), 'authenticated may not call it');
SELECT ok(has_function_privilege('service_role', 'public.invoke_upload_queue_processor()', 'EXECUTE'), 'service_role may call it');

CREATE SCHEMA net;
CREATE TABLE net.sent (url text, body jsonb, params jsonb, headers jsonb, timeout_milliseconds integer);
CREATE FUNCTION net.http_post(url text, body jsonb DEFAULT '{}'::jsonb, params jsonb DEFAULT '{}'::jsonb,
                              headers jsonb DEFAULT '{"Content-Type": "application/json"}'::jsonb,
                              timeout_milliseconds integer DEFAULT 5000)
RETURNS bigint LANGUAGE sql AS $$
  INSERT INTO net.sent VALUES (url, body, params, headers, timeout_milliseconds);
  SELECT 42::bigint;
$$;

SELECT throws_ok($$SELECT public.invoke_upload_queue_processor()$$, '55000',
  'Supabase Vault is not available: the Edge Function''s URL and key are read from it', 'without Vault the call says so');

CREATE SCHEMA vault;
CREATE TABLE vault.decrypted_secrets (name text, decrypted_secret text);
INSERT INTO vault.decrypted_secrets VALUES ('project_url', 'https://abcd.supabase.co/');
SELECT throws_ok($$SELECT public.invoke_upload_queue_processor()$$, '55000', 'Vault secret service_role_key is missing',
  'a missing key is named');
SELECT is((SELECT count(*)::int FROM net.sent), 0, 'nothing was sent without both secrets');

INSERT INTO vault.decrypted_secrets VALUES ('service_role_key', 'the-service-role-key');
SELECT is(public.invoke_upload_queue_processor(), 42::bigint, 'the call returns pg_net''s request id');
SELECT is((SELECT url FROM net.sent), 'https://abcd.supabase.co/functions/v1/upload-queue-processor',
  'it posts to the function''s URL under the project URL from Vault');
SELECT is((SELECT headers FROM net.sent),
  '{"Content-Type": "application/json", "Authorization": "Bearer the-service-role-key"}'::jsonb,
  'with the service-role key from Vault as the bearer token');
SELECT is((SELECT timeout_milliseconds FROM net.sent), 150000, 'and waits as long as Supabase lets a request run (150 s)');
SELECT is((SELECT body FROM net.sent), '{"caller": "pg_cron"}'::jsonb, 'the body names the caller');

SELECT * FROM finish();
ROLLBACK;
