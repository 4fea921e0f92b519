-- The outage budget's bytes given back (migration 0012): deleted payloads are counted on rows sharded by backend
-- (neotoma_ops.upload_queue_payload_bytes_freed), not on the singleton that every addition checks against the
-- cap, so completions do not queue on the additions' lock. The bytes held (upload_queue_payload_bytes_held())
-- are still exact, the cap is still never passed, and every path (born true, reconcile, TRUNCATE, doctor, the
-- metrics) agrees with the payloads; without the table (0012 reverted) the singleton counts alone, as before.
BEGIN;
SELECT plan(56);

CREATE TEMP TABLE t (name text PRIMARY KEY, source_id uuid, job_id uuid);
-- a pending source of p_size bytes named p_name, its bytes as given to enqueue_upload
CREATE FUNCTION pg_temp.bytes(p_name text, p_size integer) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
  SELECT convert_to(rpad(p_name, p_size, '.'), 'UTF8') $$;
CREATE FUNCTION pg_temp.enqueue(p_name text, p_size integer) RETURNS uuid LANGUAGE sql AS $$
  WITH s AS (
    INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size, storage_status)
    VALUES ('12121212-1212-4212-8212-121212121212', encode(sha256(pg_temp.bytes(p_name, p_size)), 'hex'), 'text/plain',
            'x', p_size, 'pending')
    RETURNING id)
  INSERT INTO t (name, source_id, job_id)
  SELECT p_name, s.id, public.enqueue_upload(s.id, pg_temp.bytes(p_name, p_size), 'storage down') FROM s
  RETURNING job_id $$;
-- claims the job named p_name and completes it: its payload is deleted
CREATE FUNCTION pg_temp.complete(p_name text) RETURNS boolean LANGUAGE sql AS $$
  UPDATE public.upload_queue SET next_retry_at = now() - interval '1 second' WHERE id = (SELECT job_id FROM t WHERE name = p_name);
  SELECT bool_and(c.completed) FROM public.claim_upload_jobs('shards', 1000) AS j,
         LATERAL public.complete_upload_jobs(ARRAY[j.job_id], ARRAY[j.lease_token], NULL) AS c
   WHERE j.job_id = (SELECT job_id FROM t WHERE name = p_name) $$;
CREATE FUNCTION pg_temp.held() RETURNS bigint LANGUAGE sql AS $$ SELECT neotoma_ops.upload_queue_payload_bytes_held() $$;
CREATE FUNCTION pg_temp.counted() RETURNS bigint LANGUAGE sql AS $$
  SELECT bytes FROM neotoma_ops.upload_queue_payload_bytes WHERE singleton $$;
CREATE FUNCTION pg_temp.freed() RETURNS bigint LANGUAGE sql AS $$
  SELECT coalesce(sum(bytes), 0)::bigint FROM neotoma_ops.upload_queue_payload_bytes_freed $$;
CREATE FUNCTION pg_temp.my_shard() RETURNS bigint LANGUAGE sql AS $$
  SELECT coalesce((SELECT bytes FROM neotoma_ops.upload_queue_payload_bytes_freed WHERE shard = pg_backend_pid() % 8), 0) $$;
CREATE FUNCTION pg_temp.truth() RETURNS bigint LANGUAGE sql AS $$
  SELECT coalesce(sum(octet_length(content)), 0)::bigint FROM public.upload_queue_payloads $$;
CREATE FUNCTION pg_temp.metric() RETURNS bigint LANGUAGE sql AS $$
  SELECT value::bigint FROM public.ops_metrics() WHERE metric = 'upload_queue_payload_bytes' $$;
CREATE FUNCTION pg_temp.doctor_budget() RETURNS text LANGUAGE sql AS $$
  SELECT string_agg(problem, '; ') FROM neotoma_ops.doctor() WHERE kind = 'counters' AND object = 'the upload queue''s outage budget' $$;
CREATE FUNCTION pg_temp.refusal_detail(p_name text, p_size integer) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE d text;
BEGIN
  PERFORM pg_temp.enqueue(p_name, p_size);
  RETURN NULL;
EXCEPTION WHEN SQLSTATE 'PT503' THEN
  GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
  RETURN d::jsonb;
END $$;

-- the table -------------------------------------------------------------------------------------------------
SELECT has_table('neotoma_ops', 'upload_queue_payload_bytes_freed', 'migration 0012 creates the table of bytes given back');
SELECT col_is_pk('neotoma_ops', 'upload_queue_payload_bytes_freed', 'shard', 'one row per shard');
SELECT is(ARRAY(SELECT conname::text FROM pg_constraint
                 WHERE conrelid = 'neotoma_ops.upload_queue_payload_bytes_freed'::regclass ORDER BY 1),
  ARRAY['upload_queue_payload_bytes_freed_bytes_not_negative', 'upload_queue_payload_bytes_freed_pkey',
        'upload_queue_payload_bytes_freed_shard_not_negative'],
  'its constraints are named');
SELECT throws_ok($$INSERT INTO neotoma_ops.upload_queue_payload_bytes_freed (shard, bytes) VALUES (-1, 0)$$,
  '23514', NULL, 'a shard is not negative');
SELECT throws_ok($$INSERT INTO neotoma_ops.upload_queue_payload_bytes_freed (shard, bytes) VALUES (100, -1)$$,
  '23514', NULL, 'bytes given back are not negative');
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'neotoma_ops.upload_queue_payload_bytes_freed'::regclass),
  'row level security is enabled');
SELECT is(ARRAY(SELECT polname::text || ' ' || array_to_string(ARRAY(SELECT r::regrole::text FROM unnest(polroles) AS r), ',')
                  FROM pg_policy WHERE polrelid = 'neotoma_ops.upload_queue_payload_bytes_freed'::regclass),
  ARRAY['Service role full access - upload_queue_payload_bytes_freed service_role'], 'one policy, for service_role');
SELECT is(ARRAY(SELECT r || ' ' || p FROM unnest(ARRAY['anon', 'authenticated', 'service_role']) AS r,
                     unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) AS p
                 WHERE has_table_privilege(r, 'neotoma_ops.upload_queue_payload_bytes_freed', p) ORDER BY 1),
  ARRAY['service_role INSERT', 'service_role SELECT', 'service_role UPDATE'],
  'anon and authenticated have no privilege on it; service_role reads and writes, never deletes or truncates');
SELECT is(ARRAY(SELECT r FROM unnest(ARRAY['anon', 'authenticated', 'service_role']) AS r
                 WHERE has_function_privilege(r, 'neotoma_ops.upload_queue_payload_bytes_held()', 'EXECUTE') ORDER BY 1),
  ARRAY['service_role'], 'upload_queue_payload_bytes_held() is for service_role only');

CREATE TEMP TABLE client_reads (role text PRIMARY KEY, got text);
GRANT ALL ON client_reads TO anon, authenticated;
SET LOCAL ROLE anon;
DO $$ BEGIN
  INSERT INTO client_reads SELECT 'anon', count(*)::text FROM neotoma_ops.upload_queue_payload_bytes_freed;
EXCEPTION WHEN OTHERS THEN INSERT INTO client_reads VALUES ('anon', SQLSTATE); END $$;
RESET ROLE;
SET LOCAL ROLE authenticated;
DO $$ BEGIN
  INSERT INTO client_reads SELECT 'authenticated', count(*)::text FROM neotoma_ops.upload_queue_payload_bytes_freed;
EXCEPTION WHEN OTHERS THEN INSERT INTO client_reads VALUES ('authenticated', SQLSTATE); END $$;
RESET ROLE;
SELECT is(ARRAY(SELECT role || ' ' || got FROM client_reads ORDER BY 1), ARRAY['anon 42501', 'authenticated 42501'],
  'anon and authenticated cannot read it (42501)');

-- completions give bytes back on their shard ----------------------------------------------------------------
UPDATE neotoma_ops.upload_queue_settings SET payload_bytes_cap = 10737418240;
SELECT is(pg_temp.metric(), pg_temp.truth(), 'the bytes held agree with the payloads before the test');
DO $$ BEGIN
  PERFORM pg_temp.enqueue('a', 4000), pg_temp.enqueue('b', 3000), pg_temp.enqueue('c', 2000), pg_temp.enqueue('d', 500);
END $$;
CREATE TEMP TABLE before_a AS SELECT pg_temp.counted() AS counted, pg_temp.held() AS held, pg_temp.my_shard() AS shard;
SELECT ok(pg_temp.complete('a'), 'job a completes');
SELECT is(pg_temp.counted(), (SELECT counted FROM before_a), 'a completion leaves the singleton as it was');
SELECT is(pg_temp.my_shard() - (SELECT shard FROM before_a), 4000::bigint, 'its 4000 bytes go to this backend''s shard');
SELECT is(pg_temp.held(), (SELECT held FROM before_a) - 4000, 'the bytes held drop by 4000');
SELECT is(pg_temp.held(), pg_temp.truth(), 'and agree with the payloads');
SELECT is(pg_temp.metric(), pg_temp.truth(), 'ops_metrics() reports the bytes held, the shards taken off');
SELECT is(pg_temp.doctor_budget(), NULL, 'doctor finds the outage budget true');

-- the cap is checked against the bytes held, the shards taken off ---------------------------------------------
UPDATE neotoma_ops.upload_queue_settings SET payload_bytes_cap = pg_temp.held() + 1000;
SELECT ok(pg_temp.counted() > pg_temp.held() + 1000, 'the singleton alone counts more than the cap allows');
SELECT lives_ok($$SELECT pg_temp.enqueue('e', 1000)$$, 'reaching the cap exactly is allowed (the bytes given back are free)');
SELECT is(pg_temp.held(), (SELECT payload_bytes_cap FROM neotoma_ops.upload_queue_settings), 'the queue holds its whole budget');
SELECT throws_ok($$SELECT pg_temp.enqueue('f', 1)$$, 'PT503', NULL, 'one byte more is refused with PT503 while the shards hold freed bytes');
SELECT is((SELECT (d ->> 'held_bytes')::bigint FROM pg_temp.refusal_detail('f', 1) AS d), pg_temp.held(),
  'the refusal names the bytes held, the shards taken off');
SELECT is((SELECT count(*)::int FROM t WHERE name = 'f'), 0, 'the refused enqueue wrote nothing');

-- bytes given back are never refused, even over a lowered cap
UPDATE neotoma_ops.upload_queue_settings SET payload_bytes_cap = 1;
SELECT ok(pg_temp.complete('b'), 'a completion works over the cap');
SELECT is(pg_temp.held(), pg_temp.truth(), 'and gives its bytes back');
SELECT throws_ok($$SELECT pg_temp.enqueue('f', 1)$$, 'PT503', NULL, 'an addition is still refused over the cap');
UPDATE neotoma_ops.upload_queue_settings SET payload_bytes_cap = 10737418240;

-- born true with shards present ---------------------------------------------------------------------------------
DELETE FROM neotoma_ops.upload_queue_payload_bytes;
SELECT is(pg_temp.held(), NULL, 'upload_queue_payload_bytes_held() is NULL until the counter is born');
SELECT is(pg_temp.metric(), pg_temp.truth(), 'until then ops_metrics() reports the sum of the payloads');
SELECT lives_ok($$SELECT pg_temp.enqueue('g', 700)$$, 'an enqueue');
SELECT is(pg_temp.counted(), pg_temp.truth() + pg_temp.freed(), 'bears the singleton as the payloads plus the bytes given back');
SELECT is(pg_temp.held(), pg_temp.truth(), 'so the bytes held are the payloads, this write included');
DELETE FROM neotoma_ops.upload_queue_payload_bytes;
SELECT ok(pg_temp.complete('c'), 'a completion');
SELECT is(pg_temp.held(), pg_temp.truth(), 'bears it true as well, its own bytes given back once');

-- reconcile with shards -----------------------------------------------------------------------------------------
CREATE TEMP TABLE freed_before AS SELECT pg_temp.freed() AS freed;
UPDATE neotoma_ops.upload_queue_payload_bytes SET bytes = bytes + 999;
SELECT is(pg_temp.doctor_budget(), 'the upload queue''s outage budget counts 999 bytes more than its payloads hold',
  'doctor names drift, the shards taken off');
SELECT is(neotoma_ops.upload_queue_payload_bytes_reconcile(), -999::bigint, 'reconcile returns the correction');
SELECT is(pg_temp.held(), pg_temp.truth(), 'after it, the bytes held are the payloads');
SELECT is(pg_temp.freed(), (SELECT freed FROM freed_before), 'reconcile does not write the shards');
SELECT is(neotoma_ops.upload_queue_payload_bytes_reconcile(), 0::bigint, 'a second reconcile finds nothing to correct');

-- TRUNCATE with shards ------------------------------------------------------------------------------------------
TRUNCATE public.upload_queue CASCADE;
SELECT is(pg_temp.held(), 0::bigint, 'TRUNCATE upload_queue CASCADE: the queue holds 0 bytes');
SELECT is(pg_temp.counted(), pg_temp.freed(), 'the singleton counts exactly what the shards gave back');

-- without the table (0012 reverted): as its down section does, the shards are folded into the singleton ----------
DO $$ BEGIN
  PERFORM pg_temp.enqueue('h', 1200), pg_temp.enqueue('i', 800);
END $$;
UPDATE neotoma_ops.upload_queue_payload_bytes SET bytes = bytes - pg_temp.freed();
ALTER TABLE neotoma_ops.upload_queue_payload_bytes_freed RENAME TO upload_queue_payload_bytes_freed_away;
SELECT is(pg_temp.held(), pg_temp.counted(), 'without the table, the bytes held are the singleton''s');
CREATE TEMP TABLE before_h AS SELECT pg_temp.counted() AS counted;
SELECT ok(pg_temp.complete('h'), 'job h completes');
SELECT is(pg_temp.counted(), (SELECT counted FROM before_h) - 1200, 'its bytes are given back on the singleton');
SELECT is(pg_temp.held(), pg_temp.truth(), 'the bytes held are the payloads');
UPDATE neotoma_ops.upload_queue_settings SET payload_bytes_cap = pg_temp.held();
SELECT throws_ok($$SELECT pg_temp.enqueue('j', 1)$$, 'PT503', NULL, 'an addition past the cap is refused');
UPDATE neotoma_ops.upload_queue_settings SET payload_bytes_cap = 10737418240;
SELECT lives_ok($$SELECT pg_temp.enqueue('j', 300)$$, 'below it, an addition is allowed');
SELECT is(pg_temp.held(), pg_temp.truth(), 'and counted');
SELECT is(pg_temp.metric(), pg_temp.truth(), 'ops_metrics() reports the bytes held');
DELETE FROM neotoma_ops.upload_queue_payload_bytes;
SELECT is(pg_temp.held(), NULL, 'NULL until the counter is born');
SELECT lives_ok($$SELECT pg_temp.enqueue('k', 100)$$, 'an enqueue');
SELECT is(pg_temp.held(), pg_temp.truth(), 'bears it true from the payloads');
UPDATE neotoma_ops.upload_queue_payload_bytes SET bytes = bytes + 5;
SELECT is(neotoma_ops.upload_queue_payload_bytes_reconcile(), -5::bigint, 'reconcile corrects the singleton');
SELECT is(pg_temp.held(), pg_temp.truth(), 'to the payloads');
TRUNCATE public.upload_queue CASCADE;
SELECT is(pg_temp.held(), 0::bigint, 'TRUNCATE: the queue holds 0 bytes');
SELECT is((SELECT coalesce(sum(bytes), 0)::bigint FROM neotoma_ops.upload_queue_payload_bytes_freed_away),
  (SELECT freed FROM freed_before), 'nothing wrote the shards meanwhile');

SELECT * FROM finish();
ROLLBACK;
