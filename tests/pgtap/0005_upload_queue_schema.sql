-- Upload queue schema (docs/upload-queue.md): sources.storage_status, upload_queue and its payload table, indexes
-- (one open job per source, claim order), queue autovacuum settings, RLS, grants, the pg_cron job, the claim
-- query plan, and what anon/authenticated/service_role may do.
BEGIN;
SELECT plan(66);

-- sources.storage_status
SELECT has_column('public', 'sources', 'storage_status', 'sources.storage_status exists');
SELECT col_type_is('public', 'sources', 'storage_status', 'text', 'sources.storage_status is text');
SELECT col_not_null('public', 'sources', 'storage_status', 'sources.storage_status is NOT NULL');
SELECT col_default_is('public', 'sources', 'storage_status', 'uploaded', 'sources.storage_status defaults to uploaded');
SELECT throws_like(
  $$INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size, storage_status)
    VALUES (gen_random_uuid(), repeat('a', 64), 'text/plain', 'x', 1, 'stored')$$,
  '%sources_storage_status_check%', 'a storage_status outside pending/uploaded/failed is refused');

-- upload_queue columns
SELECT has_table('public', 'upload_queue', 'upload_queue exists');
SELECT col_type_is('public', 'upload_queue', 'id', 'uuid', 'upload_queue.id is uuid');
SELECT col_is_pk('public', 'upload_queue', 'id', 'upload_queue.id is the primary key');
SELECT col_type_is('public', 'upload_queue', 'user_id', 'uuid', 'upload_queue.user_id is uuid');
SELECT col_type_is('public', 'upload_queue', 'source_id', 'uuid', 'upload_queue.source_id is uuid');
SELECT col_type_is('public', 'upload_queue', 'bucket', 'text', 'upload_queue.bucket is text');
SELECT col_default_is('public', 'upload_queue', 'bucket', 'sources', 'upload_queue.bucket defaults to sources');
SELECT col_type_is('public', 'upload_queue', 'storage_path', 'text', 'upload_queue.storage_path is text');
SELECT col_type_is('public', 'upload_queue', 'content_hash', 'text', 'upload_queue.content_hash is text');
SELECT col_type_is('public', 'upload_queue', 'byte_size', 'bigint', 'upload_queue.byte_size is bigint');
SELECT col_type_is('public', 'upload_queue', 'mime_type', 'text', 'upload_queue.mime_type is text');
SELECT col_type_is('public', 'upload_queue', 'status', 'text', 'upload_queue.status is text');
SELECT col_type_is('public', 'upload_queue', 'retry_count', 'integer', 'upload_queue.retry_count is integer');
SELECT col_type_is('public', 'upload_queue', 'max_retries', 'integer', 'upload_queue.max_retries is integer');
SELECT col_default_is('public', 'upload_queue', 'max_retries', 5, 'upload_queue.max_retries defaults to 5');
SELECT col_type_is('public', 'upload_queue', 'next_retry_at', 'timestamp with time zone', 'next_retry_at is timestamptz');
SELECT col_type_is('public', 'upload_queue', 'locked_by', 'text', 'locked_by is text');
SELECT col_type_is('public', 'upload_queue', 'locked_until', 'timestamp with time zone', 'locked_until is timestamptz');
SELECT col_type_is('public', 'upload_queue', 'lease_token', 'uuid', 'lease_token is uuid');
SELECT col_type_is('public', 'upload_queue', 'error_message', 'text', 'error_message is text');
SELECT col_type_is('public', 'upload_queue', 'created_at', 'timestamp with time zone', 'created_at is timestamptz');
SELECT col_type_is('public', 'upload_queue', 'updated_at', 'timestamp with time zone', 'updated_at is timestamptz');
SELECT fk_ok('public', 'upload_queue', 'source_id', 'public', 'sources', 'id', 'upload_queue.source_id references sources');
SELECT hasnt_column('public', 'upload_queue', 'content', 'the queue row itself holds no bytes');

-- payloads
SELECT has_table('public', 'upload_queue_payloads', 'upload_queue_payloads exists');
SELECT col_type_is('public', 'upload_queue_payloads', 'content', 'bytea', 'payload content is bytea');
SELECT col_is_pk('public', 'upload_queue_payloads', 'job_id', 'one payload per job');
SELECT fk_ok('public', 'upload_queue_payloads', 'job_id', 'public', 'upload_queue', 'id', 'payload.job_id references upload_queue');
SELECT is((SELECT confdeltype::text FROM pg_constraint WHERE conname = 'upload_queue_payloads_job_id_fkey'), 'c',
  'deleting a job deletes its bytes (ON DELETE CASCADE)');
SELECT is((SELECT attstorage::text FROM pg_attribute WHERE attrelid = 'public.upload_queue_payloads'::regclass AND attname = 'content'),
  'e', 'payload bytes are stored out of line without recompression (STORAGE EXTERNAL)');

-- indexes
SELECT is(pg_get_indexdef('public.upload_queue_one_open_job_per_source'::regclass),
  'CREATE UNIQUE INDEX upload_queue_one_open_job_per_source ON public.upload_queue USING btree (source_id) WHERE (status = ANY (ARRAY[''pending''::text, ''in_progress''::text, ''failed''::text]))',
  'at most one open (pending, in progress or failed) job per source: partial unique index');
SELECT is(pg_get_indexdef('public.upload_queue_claim_idx'::regclass),
  'CREATE INDEX upload_queue_claim_idx ON public.upload_queue USING btree (next_retry_at, id) WHERE (status = ''pending''::text)',
  'the claim index holds pending jobs only, in claim order');
SELECT has_index('public', 'upload_queue', 'upload_queue_lease_expiry_idx', 'expired leases are found by index');
SELECT has_index('public', 'upload_queue', 'upload_queue_completed_at_idx', 'completed rows past retention are found by index');

-- queue-table storage settings
SELECT ok((SELECT reloptions @> ARRAY['autovacuum_vacuum_scale_factor=0.01', 'autovacuum_analyze_scale_factor=0.02', 'fillfactor=70']
             FROM pg_class WHERE oid = 'public.upload_queue'::regclass),
  'upload_queue vacuums after 1 % dead rows and leaves room for HOT updates');

-- RLS and policies
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'public.upload_queue'::regclass), 'RLS is enabled on upload_queue');
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'public.upload_queue_payloads'::regclass), 'RLS is enabled on upload_queue_payloads');
SELECT policies_are('public', 'upload_queue',
  ARRAY['Service role full access - upload_queue', 'Users read own upload_queue'], 'upload_queue has exactly the two policies');
SELECT policies_are('public', 'upload_queue_payloads',
  ARRAY['Service role full access - upload_queue_payloads'], 'upload_queue_payloads has only the service-role policy');

-- the schedule
SELECT results_eq(
  $$SELECT schedule, command FROM cron.job WHERE jobname = 'upload-queue-processor'$$,
  $$VALUES ('*/5 * * * *'::text, 'SELECT public.process_upload_queue()'::text)$$,
  'pg_cron runs process_upload_queue() every 5 minutes as upload-queue-processor');

-- the claim query is served by the partial index, in order (no sort): 2000 jobs, half completed, half pending of
-- which 10 are due
INSERT INTO public.sources (id, user_id, content_hash, mime_type, storage_url, file_size)
SELECT ('00000000-0000-0000-0000-' || lpad(g::text, 12, '0'))::uuid, '33333333-3333-3333-3333-333333333333',
       encode(sha256(convert_to(g::text, 'UTF8')), 'hex'), 'text/plain', 'x', 1
  FROM generate_series(1, 2000) AS g;
INSERT INTO public.upload_queue (user_id, source_id, storage_path, content_hash, byte_size, mime_type, status, completed_at, next_retry_at)
SELECT s.user_id, s.id, 'p', s.content_hash, 1, 'text/plain',
       CASE WHEN n % 2 = 0 THEN 'pending' ELSE 'completed' END,
       CASE WHEN n % 2 = 0 THEN NULL ELSE now() END,
       CASE WHEN n % 100 = 0 THEN now() - n * interval '1 second' ELSE now() + n * interval '1 second' END
  FROM (SELECT s.*, row_number() OVER (ORDER BY s.id) AS n FROM public.sources AS s
         WHERE s.user_id = '33333333-3333-3333-3333-333333333333') AS s;
ANALYZE public.upload_queue;
CREATE FUNCTION pg_temp.plan_of(p_sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE l text; r text := '';
BEGIN
  FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) ' || p_sql LOOP r := r || l || E'\n'; END LOOP;
  RETURN r;
END $$;
-- under the planner settings the claim function itself runs with (its proconfig: without them PostgreSQL 17
-- prefers a bitmap + sort on this small table, which is why the function pins them)
DO $$
BEGIN
  PERFORM set_config(split_part(c, '=', 1), substr(c, strpos(c, '=') + 1), true)
     FROM pg_proc AS p, unnest(p.proconfig) AS c
    WHERE p.oid = 'public.claim_upload_jobs_with_content(text, integer, interval, integer, integer)'::regprocedure
      AND c NOT LIKE 'search\_path=%';
END $$;
SELECT matches(pg_temp.plan_of($$SELECT q.id FROM public.upload_queue AS q
    WHERE q.status = 'pending' AND q.next_retry_at <= now() ORDER BY q.next_retry_at, q.id LIMIT 10 FOR UPDATE SKIP LOCKED$$),
  'Index Scan using upload_queue_claim_idx', 'the claim query scans upload_queue_claim_idx');
SELECT doesnt_match(pg_temp.plan_of($$SELECT q.id FROM public.upload_queue AS q
    WHERE q.status = 'pending' AND q.next_retry_at <= now() ORDER BY q.next_retry_at, q.id LIMIT 10 FOR UPDATE SKIP LOCKED$$),
  'Sort', 'the claim query needs no sort: the index is in claim order');
DELETE FROM public.sources WHERE user_id = '33333333-3333-3333-3333-333333333333';
SELECT is((SELECT count(*)::int FROM public.upload_queue WHERE user_id = '33333333-3333-3333-3333-333333333333'), 0,
  'deleting a source deletes its jobs (ON DELETE CASCADE)');

-- privileges: clients execute none of the queue functions; the service role all of them
CREATE TEMP TABLE queue_functions AS
SELECT p.oid::regprocedure AS fn FROM pg_proc AS p
 WHERE p.oid IN ('public.upload_retry_delay(integer)'::regprocedure, 'public.enqueue_upload(uuid, bytea, text, text)'::regprocedure,
   'public.claim_upload_jobs(text, integer, interval)'::regprocedure, 'public.upload_job_content(uuid, uuid)'::regprocedure,
   'public.upload_job_content_range(uuid, uuid, bigint, integer)'::regprocedure,
   'public.extend_upload_lease(uuid, uuid, interval)'::regprocedure, 'public.complete_upload_job(uuid, uuid, text)'::regprocedure,
   'public.fail_upload_job(uuid, uuid, text, boolean)'::regprocedure, 'public.requeue_upload_job(uuid)'::regprocedure,
   'public.retry_upload_job_now(uuid)'::regprocedure, 'public.process_upload_queue()'::regprocedure, 'neotoma_ops.upload_queue_counter_add(text, bigint)'::regprocedure,
   'neotoma_ops.upload_queue_counter_totals()'::regprocedure,
   'neotoma_ops.upload_job_record_failure(uuid, text, boolean)'::regprocedure);
SELECT is((SELECT count(*)::int FROM queue_functions), 14, 'all fourteen queue functions exist');
SELECT is((SELECT array_agg(fn::text) FROM queue_functions
            WHERE has_function_privilege('authenticated', fn, 'EXECUTE') OR has_function_privilege('anon', fn, 'EXECUTE')),
  NULL, 'neither authenticated nor anon may execute any queue function');
SELECT is((SELECT array_agg(fn::text) FROM queue_functions WHERE NOT has_function_privilege('service_role', fn, 'EXECUTE')),
  NULL, 'service_role may execute every queue function');
SELECT is((SELECT array_agg(p.oid::regprocedure::text) FROM pg_proc AS p JOIN queue_functions AS f ON f.fn = p.oid
            WHERE p.prosecdef OR NOT coalesce(p.proconfig @> ARRAY['search_path=""'], false)),
  NULL, 'every queue function is SECURITY INVOKER with a pinned empty search_path');

-- what clients can see
INSERT INTO public.sources (id, user_id, content_hash, mime_type, storage_url, file_size, storage_status) VALUES
  ('aaaaaaaa-0000-0000-0000-00000000000a', '11111111-1111-1111-1111-111111111111', encode(sha256('mine'::bytea), 'hex'), 'text/plain', 'x', 4, 'pending'),
  ('bbbbbbbb-0000-0000-0000-00000000000b', '22222222-2222-2222-2222-222222222222', encode(sha256('theirs'::bytea), 'hex'), 'text/plain', 'y', 6, 'pending');
SELECT isnt(public.enqueue_upload('aaaaaaaa-0000-0000-0000-00000000000a', 'mine'::bytea, 'timeout'), NULL, 'a job for user 1');
SELECT isnt(public.enqueue_upload('bbbbbbbb-0000-0000-0000-00000000000b', 'theirs'::bytea, 'timeout'), NULL, 'a job for user 2');

SET LOCAL request.jwt.claims = '{"sub":"11111111-1111-1111-1111-111111111111","role":"authenticated"}';
SET LOCAL ROLE authenticated;
SELECT results_eq($$SELECT source_id, status, retry_count FROM public.upload_queue$$,
  $$VALUES ('aaaaaaaa-0000-0000-0000-00000000000a'::uuid, 'pending'::text, 0)$$,
  'a user reads the status of their own job and of no one else''s');
SELECT throws_ok($$SELECT lease_token FROM public.upload_queue$$, '42501', NULL, 'a user cannot read lease tokens');
SELECT throws_ok($$SELECT content FROM public.upload_queue_payloads$$, '42501', NULL, 'a user cannot read queued bytes');
SELECT throws_ok($$SELECT public.upload_job_content(id, gen_random_uuid()) FROM public.upload_queue$$, '42501', NULL,
  'a user cannot call upload_job_content()');
SELECT throws_ok($$SELECT public.upload_job_content_range(id, gen_random_uuid(), 0, 10) FROM public.upload_queue$$, '42501', NULL,
  'a user cannot call upload_job_content_range()');
SELECT throws_ok($$SELECT * FROM public.claim_upload_jobs('me')$$, '42501', NULL, 'a user cannot claim jobs');
SELECT throws_ok($$SELECT public.enqueue_upload('aaaaaaaa-0000-0000-0000-00000000000a', 'mine'::bytea)$$, '42501', NULL,
  'a user cannot enqueue');
SELECT throws_ok($$SELECT public.process_upload_queue()$$, '42501', NULL, 'a user cannot run the processor');
SELECT throws_ok($$UPDATE public.upload_queue SET status = 'completed'$$, '42501', NULL, 'a user cannot change a job');
RESET ROLE;
SET LOCAL request.jwt.claims = '';
SET LOCAL ROLE anon;
SELECT throws_ok($$SELECT status FROM public.upload_queue$$, '42501', NULL, 'anon cannot read the queue');
RESET ROLE;

-- the service role (what the worker connects as on Supabase) can drive a job through every function
SELECT lives_ok($$
DO $flow$
DECLARE v_job uuid; v_token uuid; v_bytes bytea; v_ok boolean;
BEGIN
  SET LOCAL ROLE service_role;
  UPDATE public.upload_queue SET next_retry_at = now() - interval '1 second'
   WHERE source_id = 'aaaaaaaa-0000-0000-0000-00000000000a';
  SELECT c.job_id, c.lease_token INTO v_job, v_token FROM public.claim_upload_jobs('svc', 1) AS c;
  v_bytes := public.upload_job_content(v_job, v_token);
  IF v_bytes IS DISTINCT FROM 'mine'::bytea THEN RAISE EXCEPTION 'content: %', v_bytes; END IF;
  IF public.upload_job_content_range(v_job, v_token, 1, 3) IS DISTINCT FROM 'ine'::bytea THEN RAISE EXCEPTION 'range'; END IF;
  IF public.extend_upload_lease(v_job, v_token) IS NULL THEN RAISE EXCEPTION 'extend failed'; END IF;
  IF NOT public.fail_upload_job(v_job, v_token, 'HTTP 400', false) THEN RAISE EXCEPTION 'fail failed'; END IF;
  PERFORM public.requeue_upload_job(v_job);
  PERFORM public.retry_upload_job_now(v_job);
  SELECT c.lease_token INTO v_token FROM public.claim_upload_jobs('svc', 1) AS c;
  IF NOT public.complete_upload_job(v_job, v_token) THEN RAISE EXCEPTION 'complete failed'; END IF;
  PERFORM public.process_upload_queue();
  PERFORM * FROM neotoma_ops.upload_queue_counter_totals();
  RESET ROLE;
END
$flow$ $$, 'service_role can enqueue, claim, read bytes and slices, extend, fail, requeue, retry now, complete and process');
SELECT is((SELECT status FROM public.upload_queue WHERE source_id = 'aaaaaaaa-0000-0000-0000-00000000000a'), 'completed',
  'the service-role flow completed the job');

SELECT * FROM finish();
ROLLBACK;
