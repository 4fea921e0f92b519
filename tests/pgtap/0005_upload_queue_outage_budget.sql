-- The upload queue's outage budget: the payload bytes it holds are counted for every writer and may not pass
-- upload_queue_settings.payload_bytes_cap; past it enqueue_upload is refused with PT503 UPLOAD_QUEUE_FULL (writing
-- nothing), while giving bytes back (completions) always works.
BEGIN;
SELECT plan(26);

CREATE TEMP TABLE t (name text PRIMARY KEY, source_id uuid, job_id uuid);
-- a pending source of p_size bytes named p_name, its bytes as given to enqueue_upload
CREATE FUNCTION pg_temp.bytes(p_name text, p_size integer) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
  SELECT convert_to(rpad(p_name, p_size, '.'), 'UTF8') $$;
CREATE FUNCTION pg_temp.source(p_name text, p_size integer) RETURNS uuid LANGUAGE sql AS $$
  WITH s AS (
    INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size, storage_status)
    VALUES ('24242424-2424-4242-8242-242424242424', encode(sha256(pg_temp.bytes(p_name, p_size)), 'hex'), 'text/plain',
            'x', p_size, 'pending')
    RETURNING id)
  INSERT INTO t (name, source_id) SELECT p_name, s.id FROM s RETURNING source_id $$;
CREATE FUNCTION pg_temp.enqueue(p_name text, p_size integer) RETURNS uuid LANGUAGE sql AS $$
  UPDATE t SET job_id = public.enqueue_upload(source_id, pg_temp.bytes(p_name, p_size), 'storage down')
   WHERE name = p_name RETURNING job_id $$;
CREATE FUNCTION pg_temp.held() RETURNS bigint LANGUAGE sql AS $$
  SELECT value::bigint FROM public.ops_metrics() WHERE metric = 'upload_queue_payload_bytes' $$;
CREATE FUNCTION pg_temp.truth() RETURNS bigint LANGUAGE sql AS $$
  SELECT coalesce(sum(octet_length(content)), 0)::bigint FROM public.upload_queue_payloads $$;
CREATE FUNCTION pg_temp.rejections() RETURNS bigint LANGUAGE sql AS $$
  SELECT value::bigint FROM public.ops_metrics() WHERE metric = 'upload_queue_full_rejections_total' $$;

SELECT is((SELECT payload_bytes_cap FROM neotoma_ops.upload_queue_settings), 10737418240::bigint,
  'the default outage budget is 10 GiB');
SELECT is(pg_temp.held(), pg_temp.truth(), 'the bytes held agree with the payloads before the test');
CREATE TEMP TABLE t_before AS SELECT pg_temp.held() AS held, pg_temp.rejections() AS rejections;

DO $$ BEGIN
  PERFORM pg_temp.source('a', 4000), pg_temp.source('b', 3000), pg_temp.source('c', 2000), pg_temp.source('d', 1);
  PERFORM pg_temp.enqueue('a', 4000);
END $$;
SELECT is(pg_temp.held() - (SELECT held FROM t_before), 4000::bigint, 'an enqueued payload adds its bytes');

UPDATE neotoma_ops.upload_queue_settings SET payload_bytes_cap = (SELECT held FROM t_before) + 7000;
SELECT lives_ok($$SELECT pg_temp.enqueue('b', 3000)$$, 'reaching the cap exactly is allowed');
SELECT is(pg_temp.held() - (SELECT held FROM t_before), 7000::bigint, 'the queue now holds its whole budget');

SELECT throws_like($$SELECT pg_temp.enqueue('c', 2000)$$,
  'Upload queue full: it holds % of its % outage budget (% for jobs still trying, % for jobs that failed); this upload needs 1.95 KiB',
  'past the cap: PT503 with a message naming what is held, the cap and what was asked');
SELECT throws_ok($$SELECT pg_temp.enqueue('c', 2000)$$, 'PT503', NULL, 'SQLSTATE PT503 (HTTP 503 through PostgREST)');
CREATE FUNCTION pg_temp.refusal_detail() RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE d text;
BEGIN
  PERFORM pg_temp.enqueue('c', 2000);
  RETURN NULL;
EXCEPTION WHEN SQLSTATE 'PT503' THEN
  GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
  RETURN d::jsonb;
END $$;
SELECT is(pg_temp.refusal_detail() - 'held_bytes' - 'cap_bytes' - 'pending_bytes' - 'failed_bytes',
  '{"code": "UPLOAD_QUEUE_FULL", "requested_bytes": 2000}'::jsonb, 'DETAIL is JSON with a stable code');
SELECT is((SELECT (d ->> 'cap_bytes')::bigint - (d ->> 'held_bytes')::bigint FROM pg_temp.refusal_detail() AS d), 0::bigint,
  'DETAIL: held_bytes and cap_bytes as they are (the budget is full)');
SELECT is((SELECT count(*)::int FROM public.upload_queue WHERE source_id = (SELECT source_id FROM t WHERE name = 'c')), 0,
  'the refused enqueue wrote no job');
SELECT is(pg_temp.held() - (SELECT held FROM t_before), 7000::bigint, 'and held no bytes');
SELECT ok(pg_temp.rejections() - (SELECT rejections FROM t_before) >= 4,
  'every refusal is counted, though its statement was rolled back');

-- what holds the budget: a job that failed for good keeps its bytes; the refusal says so and how to free them
CREATE FUNCTION pg_temp.refusal_hint() RETURNS text LANGUAGE plpgsql AS $$
DECLARE h text;
BEGIN
  PERFORM pg_temp.enqueue('c', 2000);
  RETURN NULL;
EXCEPTION WHEN SQLSTATE 'PT503' THEN
  GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
  RETURN h;
END $$;
SELECT unalike(pg_temp.refusal_hint(), '%requeue%', 'while only jobs still trying hold it, the hint does not send anyone to requeue');
UPDATE public.upload_queue SET next_retry_at = now() - interval '1 second' WHERE id = (SELECT job_id FROM t WHERE name = 'b');
SELECT ok(public.fail_upload_job(j.job_id, j.lease_token, 'test: refused for good', false), 'job b fails for good')
  FROM public.claim_upload_jobs('w', 100) AS j WHERE j.job_id = (SELECT job_id FROM t WHERE name = 'b');
SELECT is((SELECT (d ->> 'failed_bytes')::bigint FROM pg_temp.refusal_detail() AS d), 3000::bigint,
  'DETAIL: failed_bytes counts the bytes failed jobs hold');
SELECT matches(pg_temp.refusal_hint(), 'failed jobs hold their bytes until requeued: .*"neotoma-ops requeue --all-failed"',
  'when failed jobs hold the budget, the hint gives the requeue command');
SELECT is((SELECT (d ->> 'pending_bytes')::bigint + (d ->> 'failed_bytes')::bigint = (d ->> 'held_bytes')::bigint
             FROM pg_temp.refusal_detail() AS d), true, 'DETAIL: pending and failed bytes add up to what is held');

-- completions give bytes back, even when the queue is over a cap lowered below what it holds
UPDATE neotoma_ops.upload_queue_settings SET payload_bytes_cap = 1;
UPDATE public.upload_queue SET next_retry_at = now() - interval '1 second' WHERE id = (SELECT job_id FROM t WHERE name = 'a');
SELECT ok((SELECT bool_and(c.completed) FROM public.claim_upload_jobs('w', 100) AS j,
                LATERAL public.complete_upload_jobs(ARRAY[j.job_id], ARRAY[j.lease_token], NULL) AS c
           WHERE j.job_id = (SELECT job_id FROM t WHERE name = 'a')), 'a completion works over the cap');
SELECT is(pg_temp.held() - (SELECT held FROM t_before), 3000::bigint, 'and gives its 4000 bytes back');
SELECT throws_ok($$SELECT pg_temp.enqueue('d', 1)$$, 'PT503', NULL, 'a single byte more is refused while over the cap');

-- born true: a missing counter row is recreated from the payloads by the next write
DELETE FROM neotoma_ops.upload_queue_payload_bytes;
UPDATE neotoma_ops.upload_queue_settings SET payload_bytes_cap = 10737418240;
DO $$ BEGIN PERFORM pg_temp.enqueue('d', 1); END $$;
SELECT is(neotoma_ops.upload_queue_payload_bytes_held(), pg_temp.truth(),
  'the counter row is born true from the payloads, this write included');
SELECT is(pg_temp.held(), pg_temp.truth(), 'ops_metrics() reports it');
SELECT is((SELECT value FROM public.ops_metrics() WHERE metric = 'upload_queue_payload_bytes_cap'), 10737418240::float8,
  'ops_metrics() reports the cap');

-- drift (a counter changed by hand) is repaired by the nightly reconcile
UPDATE neotoma_ops.upload_queue_payload_bytes SET bytes = bytes + 999;
SELECT is(public.reconcile_storage_usage() >= 0 AND pg_temp.held() = pg_temp.truth(), true,
  'reconcile_storage_usage() makes the budget counter equal the payloads again');
UPDATE neotoma_ops.upload_queue_payload_bytes SET bytes = bytes - 5;
SELECT is(neotoma_ops.upload_queue_payload_bytes_reconcile(), 5::bigint, 'the queue''s reconcile returns the correction');

-- TRUNCATE, directly or by CASCADE from sources, leaves the counter true (the queue then holds nothing)
TRUNCATE public.upload_queue CASCADE;
SELECT is(pg_temp.held(), 0::bigint, 'TRUNCATE upload_queue CASCADE: the queue holds 0 bytes, as its payloads say');

SELECT * FROM finish();
ROLLBACK;
