-- Operations: the call of the upload-queue-processor Edge Function through pg_net, with its URL and key from
-- Vault, scheduled on request. Where the real pg_net and Vault are installed (the Supabase-shaped test mode), the
-- call is made for real inside this transaction and the request pg_net queued is read back (rolled back before
-- pg_net's worker could send it); elsewhere, what a database without them answers.
BEGIN;
SELECT to_regprocedure('net.http_post(text,jsonb,jsonb,jsonb,integer)') IS NOT NULL
   AND to_regclass('vault.decrypted_secrets') IS NOT NULL AS supabase_extensions \gset
SELECT plan(CASE WHEN :'supabase_extensions'::boolean THEN 20 ELSE 8 END);

SELECT is((SELECT count(*)::int FROM cron.job WHERE jobname = 'upload-queue-edge-function'), 0,
  'after the migrations no Edge Function call is scheduled: it is scheduled on request');
SELECT ok(NOT has_function_privilege('anon', 'public.invoke_upload_queue_processor()', 'EXECUTE'), 'anon may not call it');
SELECT ok(NOT has_function_privilege('authenticated', 'public.invoke_upload_queue_processor()', 'EXECUTE'), 'authenticated may not call it');
SELECT ok(has_function_privilege('service_role', 'public.invoke_upload_queue_processor()', 'EXECUTE'), 'service_role may call it');
SELECT ok(NOT has_function_privilege('service_role', 'public.schedule_upload_queue_edge_function(text, text)', 'EXECUTE'),
  'scheduling it is the operator''s alone (it writes Vault with the caller''s rights), not even service_role''s');
SELECT ok(NOT has_function_privilege('anon', 'public.unschedule_upload_queue_edge_function()', 'EXECUTE'),
  'clients may not unschedule it');

\if :supabase_extensions
SELECT throws_ok($$SELECT public.invoke_upload_queue_processor()$$, '55000', 'Vault secret neotoma_ops_project_url is missing',
  'without its secrets the call names the missing one');
SELECT throws_ok($$SELECT public.schedule_upload_queue_edge_function('https://abcd.supabase.co')$$, '55000',
  'p_function_key is neither given nor stored in Vault', 'scheduling without a key stored or given is refused');
SELECT is((SELECT count(*)::int FROM vault.secrets WHERE name LIKE 'neotoma\_ops\_%'), 0, '... and writes nothing to Vault');
SELECT throws_ok($$SELECT public.schedule_upload_queue_edge_function('abcd.supabase.co/functions', 'k')$$, '22023',
  'p_project_url must be the project URL, e.g. https://PROJECT.supabase.co, got ''abcd.supabase.co/functions''',
  'a malformed project URL is named');

SELECT ok(public.schedule_upload_queue_edge_function('https://abcd.supabase.co/', 'sb_secret_first') IS NOT NULL,
  'scheduling with both stores them and returns the job id');
SELECT results_eq($$SELECT schedule::text, command FROM cron.job WHERE jobname = 'upload-queue-edge-function'$$,
  $$VALUES ('* * * * *'::text, 'SELECT public.invoke_upload_queue_processor()'::text)$$, 'the job calls it every minute');
CREATE FUNCTION pg_temp.stored() RETURNS text LANGUAGE sql AS $$
  SELECT string_agg(format('%s=%s', name, decrypted_secret), ' ' ORDER BY name::text COLLATE "C")
    FROM vault.decrypted_secrets WHERE name LIKE 'neotoma\_ops\_%'
$$;
SELECT is(pg_temp.stored(), 'neotoma_ops_function_key=sb_secret_first neotoma_ops_project_url=https://abcd.supabase.co/',
  'the URL and the key are in Vault');

SELECT is(public.schedule_upload_queue_edge_function(p_function_key => 'sb_secret_rotated'),
  (SELECT jobid FROM cron.job WHERE jobname = 'upload-queue-edge-function'), 'run again, it replaces the key and keeps the job');
SELECT is(pg_temp.stored(), 'neotoma_ops_function_key=sb_secret_rotated neotoma_ops_project_url=https://abcd.supabase.co/',
  'the key is rotated, the URL kept, nothing duplicated');

CREATE TEMP TABLE called ON COMMIT DROP AS SELECT public.invoke_upload_queue_processor() AS id;
CREATE TEMP TABLE sent ON COMMIT DROP AS SELECT q.* FROM net.http_request_queue AS q JOIN called USING (id);
SELECT is((SELECT url FROM sent),
  'https://abcd.supabase.co/functions/v1/upload-queue-processor', 'the call posts to the function''s URL under the project URL');
SELECT is((SELECT headers FROM sent),
  '{"apikey": "sb_secret_rotated", "Content-Type": "application/json", "Authorization": "Bearer sb_secret_rotated"}'::jsonb,
  'with the key from Vault as bearer token and apikey');
SELECT results_eq($$SELECT method::text, timeout_milliseconds, convert_from(body, 'UTF8')::jsonb FROM sent$$,
  $$VALUES ('POST'::text, 150000, '{"caller": "pg_cron"}'::jsonb)$$, 'a POST naming its caller, waiting as long as Supabase lets a request run');

SELECT is(public.unschedule_upload_queue_edge_function(), true, 'unscheduling removes the job');
SELECT is(public.unschedule_upload_queue_edge_function(), false, '... and again finds nothing to remove');
\else
SELECT throws_ok($$SELECT public.invoke_upload_queue_processor()$$, '55000',
  'pg_net is not installed: the upload-queue-processor Edge Function cannot be called from the database',
  'without pg_net the call says so');
SELECT throws_ok($$SELECT public.schedule_upload_queue_edge_function('https://abcd.supabase.co', 'k')$$, '55000',
  'pg_net is not installed: the upload-queue-processor Edge Function cannot be called from the database',
  'without pg_net scheduling it is refused, saying why');
\endif

SELECT * FROM finish();
ROLLBACK;
