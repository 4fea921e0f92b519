-- Upload queue behaviour (docs/upload-queue.md): retry delays, enqueue (and its bad input), claim order and arguments,
-- bytes for the lease holder only, lease extension, completion, the full backoff schedule up to the terminal
-- failure, requeue, fencing of stale leases, and process_upload_queue() (rescue, prune, due, idempotence).
-- Time is moved by backdating next_retry_at / locked_until; now() is fixed for the whole transaction.
BEGIN;
SELECT plan(130);

CREATE TEMP TABLE t_jobs (name text PRIMARY KEY, source_id uuid, job_id uuid, token uuid);
CREATE TEMP TABLE t_counters_before AS SELECT * FROM neotoma_ops.upload_queue_counter_totals();

-- a source row as ingest inserts it (storage_status as given), named for later lookups
CREATE FUNCTION pg_temp.source(p_name text, p_status text DEFAULT 'pending',
                               p_user uuid DEFAULT '11111111-1111-1111-1111-111111111111') RETURNS uuid
LANGUAGE sql AS $$
  WITH s AS (
    INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size, storage_status)
    VALUES (p_user, encode(sha256(convert_to(p_name, 'UTF8')), 'hex'), 'text/plain',
            p_user::text || '/' || encode(sha256(convert_to(p_name, 'UTF8')), 'hex'),
            octet_length(p_name), p_status)
    RETURNING id)
  INSERT INTO t_jobs (name, source_id) SELECT p_name, s.id FROM s RETURNING source_id
$$;
CREATE FUNCTION pg_temp.enqueue(p_name text) RETURNS uuid LANGUAGE sql AS $$
  UPDATE t_jobs SET job_id = public.enqueue_upload(source_id, convert_to(p_name, 'UTF8'), 'HTTP 503 on original upload')
   WHERE name = p_name RETURNING job_id
$$;
CREATE FUNCTION pg_temp.job(p_name text) RETURNS uuid LANGUAGE sql STABLE AS $$ SELECT job_id FROM t_jobs WHERE name = p_name $$;
CREATE FUNCTION pg_temp.src(p_name text) RETURNS uuid LANGUAGE sql STABLE AS $$ SELECT source_id FROM t_jobs WHERE name = p_name $$;
CREATE FUNCTION pg_temp.token(p_name text) RETURNS uuid LANGUAGE sql STABLE AS $$ SELECT token FROM t_jobs WHERE name = p_name $$;
-- makes the named job due, claims exactly it as p_worker, remembers and returns the lease token
CREATE FUNCTION pg_temp.claim(p_name text, p_worker text DEFAULT 'worker-a') RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE v_job uuid; v_token uuid;
BEGIN
  UPDATE public.upload_queue SET next_retry_at = now() - interval '1 second' WHERE id = pg_temp.job(p_name);
  SELECT c.job_id, c.lease_token INTO v_job, v_token FROM public.claim_upload_jobs(p_worker, 1) AS c;
  IF v_job IS DISTINCT FROM pg_temp.job(p_name) THEN
    RAISE EXCEPTION 'claimed % instead of job %', v_job, p_name;
  END IF;
  UPDATE t_jobs SET token = v_token WHERE name = p_name;
  RETURN v_token;
END $$;
CREATE FUNCTION pg_temp.due_in(p_name text) RETURNS interval LANGUAGE sql STABLE AS $$
  SELECT next_retry_at - now() FROM public.upload_queue WHERE id = pg_temp.job(p_name)
$$;
CREATE FUNCTION pg_temp.counted(p_counter text) RETURNS bigint LANGUAGE sql STABLE AS $$
  SELECT a.value - b.value FROM neotoma_ops.upload_queue_counter_totals() AS a
    JOIN t_counters_before AS b USING (counter) WHERE a.counter = p_counter
$$;

-- ---------------------------------------------------------------------------------------------- retry delay
SELECT throws_ok($$SELECT public.upload_retry_delay(0)$$, '22023', 'p_retry must be a retry number between 1 and 5, got 0',
  'upload_retry_delay(0) is refused with 22023');
SELECT throws_ok($$SELECT public.upload_retry_delay(6)$$, '22023', 'p_retry must be a retry number between 1 and 5, got 6',
  'upload_retry_delay(6) is refused with 22023');
SELECT throws_ok($$SELECT public.upload_retry_delay(NULL)$$, '22023', NULL, 'upload_retry_delay(NULL) is refused with 22023');
SELECT ok(bool_and(d >= make_interval(secs => 30 * 2 ^ (n - 1)) AND d <= make_interval(secs => 33 * 2 ^ (n - 1))),
          format('upload_retry_delay(%s) is %s s + 0-10 %% (300 samples)', n, 30 * 2 ^ (n - 1)))
  FROM generate_series(1, 5) AS n, LATERAL (SELECT public.upload_retry_delay(n) AS d FROM generate_series(1, 300)) AS x
 GROUP BY n ORDER BY n;
SELECT ok(max(d) - min(d) > interval '1 second', 'the jitter spreads retries (retry 4: samples differ by more than 1 s)')
  FROM (SELECT public.upload_retry_delay(4) AS d FROM generate_series(1, 300)) AS x;
SELECT ok(max(d) <= interval '10 minutes', 'no delay exceeds 10 minutes')
  FROM (SELECT public.upload_retry_delay(5) AS d FROM generate_series(1, 300)) AS x;

-- --------------------------------------------------------------------------------------- enqueue: bad input
SELECT pg_temp.source('mismatch', 'uploaded') IS NOT NULL AS created \gset
SELECT throws_ok(
  format('SELECT public.enqueue_upload(%L, %L::bytea)', pg_temp.src('mismatch'), 'other bytes'),
  '22023',
  format('p_content does not match source %s: sha256(p_content) = %s, sources.content_hash = %s',
         pg_temp.src('mismatch'), encode(sha256('other bytes'::bytea), 'hex'), encode(sha256('mismatch'::bytea), 'hex')),
  'bytes whose hash differs from the source''s are refused with 22023 naming both hashes');
SELECT throws_ok(
  $$SELECT public.enqueue_upload('99999999-9999-9999-9999-999999999999', 'x'::bytea)$$,
  '23503', 'source 99999999-9999-9999-9999-999999999999 does not exist (p_source_id)',
  'an unknown source is refused with 23503 naming it');
SELECT throws_ok(format('SELECT public.enqueue_upload(%L, NULL)', pg_temp.src('mismatch')), '23502', 'p_content must not be NULL',
  'NULL bytes are refused with 23502');
SELECT is((SELECT count(*)::int FROM public.upload_queue), 0, 'refused enqueues wrote no job');
SELECT is((SELECT count(*)::int FROM public.upload_queue_payloads), 0, 'refused enqueues wrote no bytes');
SELECT is((SELECT storage_status FROM public.sources WHERE id = pg_temp.src('mismatch')), 'uploaded',
  'refused enqueue left the source''s storage_status alone');

-- --------------------------------------------------------------------------------------------- enqueue: ok
SELECT pg_temp.source('alpha', 'uploaded') IS NOT NULL AS created \gset
SELECT isnt(pg_temp.enqueue('alpha'), NULL, 'enqueue_upload returns the job id');
SELECT results_eq(
  format($$SELECT user_id, bucket, storage_path, content_hash, byte_size, mime_type, status, retry_count, max_retries,
                  error_message, lease_token IS NULL FROM public.upload_queue WHERE id = %L$$, pg_temp.job('alpha')),
  format($$VALUES ('11111111-1111-1111-1111-111111111111'::uuid, 'sources'::text, %L::text, %L::text, 5::bigint,
                   'text/plain'::text, 'pending'::text, 0, 5, 'HTTP 503 on original upload'::text, true)$$,
         '11111111-1111-1111-1111-111111111111/' || encode(sha256('alpha'::bytea), 'hex'), encode(sha256('alpha'::bytea), 'hex')),
  'the job is pending, retry_count 0, max 5, at {user_id}/{content_hash} in bucket sources');
SELECT ok(pg_temp.due_in('alpha') BETWEEN interval '30 seconds' AND interval '33 seconds',
  'enqueue schedules retry 1 30 s (+0-10 %) ahead');
SELECT is((SELECT storage_status FROM public.sources WHERE id = pg_temp.src('alpha')), 'pending', 'the source is pending');
SELECT is((SELECT content FROM public.upload_queue_payloads WHERE job_id = pg_temp.job('alpha')), 'alpha'::bytea,
  'the bytes wait in upload_queue_payloads');
SELECT is(public.enqueue_upload(pg_temp.src('alpha'), 'alpha'::bytea), pg_temp.job('alpha'),
  'enqueueing a source that has an active job returns that job');
SELECT is((SELECT count(*)::int FROM public.upload_queue WHERE source_id = pg_temp.src('alpha')), 1, '... and adds no job');
SELECT throws_ok(
  format($$INSERT INTO public.upload_queue (user_id, source_id, storage_path, content_hash, byte_size, mime_type)
           SELECT user_id, source_id, storage_path, content_hash, byte_size, mime_type FROM public.upload_queue WHERE id = %L$$,
         pg_temp.job('alpha')),
  '23505', NULL, 'a second open job for the same source is refused by the unique index');
SELECT is(pg_temp.counted('upload_enqueued_total'), 1::bigint, 'one enqueue was counted');

-- ------------------------------------------------------------------------------------- claim: bad arguments
SELECT throws_ok($$SELECT * FROM public.claim_upload_jobs('w', 0)$$, '22023', 'p_limit must be between 1 and 1000, got 0',
  'p_limit 0 is refused with 22023');
SELECT throws_ok($$SELECT * FROM public.claim_upload_jobs('w', -1)$$, '22023', NULL, 'p_limit -1 is refused with 22023');
SELECT throws_ok($$SELECT * FROM public.claim_upload_jobs('w', 1001)$$, '22023', NULL, 'p_limit 1001 is refused with 22023');
SELECT throws_ok($$SELECT * FROM public.claim_upload_jobs('w', 10, interval '0')$$, '22023',
  'p_lease must be a positive interval of at most 1 day, got 00:00:00', 'a zero lease is refused with 22023');
SELECT throws_ok($$SELECT * FROM public.claim_upload_jobs('w', 10, interval '-1 minute')$$, '22023', NULL,
  'a negative lease is refused with 22023');
SELECT throws_ok($$SELECT * FROM public.claim_upload_jobs('', 10)$$, '22023', NULL, 'an empty worker id is refused with 22023');
UPDATE public.upload_queue SET next_retry_at = now() - interval '1 second' WHERE id = pg_temp.job('alpha');
SELECT throws_ok($$SELECT * FROM public.claim_upload_jobs('w', 0)$$, '22023', NULL, 'a refused claim ...');
SELECT is((SELECT status FROM public.upload_queue WHERE id = pg_temp.job('alpha')), 'pending', '... claims nothing');
UPDATE public.upload_queue SET next_retry_at = now() + interval '30 seconds' WHERE id = pg_temp.job('alpha');

-- ------------------------------------------------------------------------------------------- claim: order
SELECT bool_and(pg_temp.source(n) IS NOT NULL AND pg_temp.enqueue(n) IS NOT NULL) AS created
  FROM unnest(ARRAY['b10', 'b30', 'b20', 'future']) AS n \gset
UPDATE public.upload_queue AS q SET next_retry_at = now() - v.ago
  FROM (VALUES ('b10', interval '10 minutes'), ('b30', interval '30 minutes'), ('b20', interval '20 minutes'),
               ('future', interval '-1 hour')) AS v(name, ago)
 WHERE q.id = pg_temp.job(v.name);
CREATE TEMP TABLE t_claim1 AS SELECT row_number() OVER () AS ord, * FROM public.claim_upload_jobs('worker-a', 2);
SELECT results_eq($$SELECT job_id FROM t_claim1 ORDER BY ord$$,
  $$VALUES (pg_temp.job('b30')), (pg_temp.job('b20'))$$, 'claim returns the oldest due jobs first, up to p_limit');
SELECT results_eq(
  $$SELECT c.source_id, c.storage_path, c.content_hash, c.byte_size, c.retry_count, c.locked_until
      FROM t_claim1 AS c WHERE c.job_id = pg_temp.job('b30')$$,
  $$SELECT source_id, storage_path, content_hash, byte_size, 0, now() + interval '5 minutes'
      FROM public.upload_queue WHERE id = pg_temp.job('b30')$$,
  'a claimed row carries what the upload needs and a 5-minute lease by default');
SELECT is((SELECT count(*)::int FROM public.upload_queue AS q JOIN t_claim1 AS c ON c.job_id = q.id
            WHERE q.status = 'in_progress' AND q.locked_by = 'worker-a' AND q.lease_token = c.lease_token
              AND q.locked_until = c.locked_until), 2, 'claimed jobs are in progress under the returned lease');
SELECT is((SELECT count(DISTINCT lease_token)::int FROM t_claim1), 2, 'each claim gets its own lease token');
SELECT results_eq($$SELECT job_id FROM public.claim_upload_jobs('worker-b', 10)$$, $$VALUES (pg_temp.job('b10'))$$,
  'a second claim skips jobs already claimed and jobs not yet due');
SELECT is_empty($$SELECT * FROM public.claim_upload_jobs('worker-b', 10)$$, 'nothing left to claim');
SELECT is(pg_temp.counted('upload_retries_total'), 3::bigint, 'each claimed job counts as a retry');

-- ------------------------------------------------------------------------ bytes, lease extension, completion
UPDATE t_jobs AS t SET token = c.lease_token FROM t_claim1 AS c WHERE c.job_id = t.job_id;
SELECT is(public.upload_job_content(pg_temp.job('b30'), pg_temp.token('b30')), 'b30'::bytea, 'the lease holder gets the bytes');
SELECT is(public.upload_job_content(pg_temp.job('b30'), gen_random_uuid()), NULL, 'a wrong token gets no bytes');
SELECT is(public.upload_job_content_range(pg_temp.job('b30'), pg_temp.token('b30'), 0, 2), 'b3'::bytea,
  'the lease holder reads a slice from offset 0');
SELECT is(public.upload_job_content_range(pg_temp.job('b30'), pg_temp.token('b30'), 1, 1000), '30'::bytea,
  'a slice running past the end is cut at the end');
SELECT is(public.upload_job_content_range(pg_temp.job('b30'), pg_temp.token('b30'), 3, 10), ''::bytea,
  'a slice starting at byte_size is empty');
SELECT is(public.upload_job_content_range(pg_temp.job('b30'), gen_random_uuid(), 0, 10), NULL, 'a wrong token gets no slice');
SELECT throws_ok(format('SELECT public.upload_job_content_range(%L, %L, -1, 10)', pg_temp.job('b30'), pg_temp.token('b30')),
  '22023', 'p_offset must be a byte offset between 0 and 2147483647, got -1', 'a negative offset is refused with 22023');
SELECT throws_ok(format('SELECT public.upload_job_content_range(%L, %L, 0, 0)', pg_temp.job('b30'), pg_temp.token('b30')),
  '22023', 'p_length must be between 1 and 67108864 (64 MiB), got 0', 'a zero length is refused with 22023');
SELECT is(public.extend_upload_lease(pg_temp.job('b30'), pg_temp.token('b30'), interval '10 minutes'),
  now() + interval '10 minutes', 'the lease holder extends the lease');
SELECT is(public.extend_upload_lease(pg_temp.job('b30'), gen_random_uuid(), interval '1 hour'), NULL,
  'a wrong token cannot extend the lease');
SELECT is((SELECT locked_until FROM public.upload_queue WHERE id = pg_temp.job('b30')), now() + interval '10 minutes',
  '... and the lease is unchanged');
SELECT throws_ok(format('SELECT public.extend_upload_lease(%L, %L, interval ''0'')', pg_temp.job('b30'), pg_temp.token('b30')),
  '22023', NULL, 'extending by a zero lease is refused with 22023');
SELECT is(public.complete_upload_job(pg_temp.job('b30'), gen_random_uuid()), false, 'completing with a wrong token returns false');
SELECT is((SELECT status FROM public.upload_queue WHERE id = pg_temp.job('b30')), 'in_progress', '... and changes nothing');
SELECT is(public.complete_upload_job(pg_temp.job('b30'), pg_temp.token('b30'), 'custom/key'), true, 'the lease holder completes');
SELECT results_eq(
  format($$SELECT q.status, q.completed_at, s.storage_status, s.storage_url FROM public.upload_queue AS q
            JOIN public.sources AS s ON s.id = q.source_id WHERE q.id = %L$$, pg_temp.job('b30')),
  $$VALUES ('completed'::text, now(), 'uploaded'::text, 'custom/key'::text)$$,
  'job completed; source uploaded with the given storage_url');
SELECT is((SELECT count(*)::int FROM public.upload_queue_payloads WHERE job_id = pg_temp.job('b30')), 0,
  'the bytes of a completed job are deleted');
SELECT is(public.complete_upload_job(pg_temp.job('b30'), pg_temp.token('b30')), true,
  'repeating the completion with the same token is harmless and says true');
SELECT is(public.fail_upload_job(pg_temp.job('b30'), pg_temp.token('b30'), 'late'), false, 'a completed job cannot be failed');
SELECT is(public.complete_upload_job(pg_temp.job('b20'), pg_temp.token('b20')), true, 'completion without a url ...');
SELECT is((SELECT storage_url FROM public.sources WHERE id = pg_temp.src('b20')),
  '11111111-1111-1111-1111-111111111111/' || encode(sha256('b20'::bytea), 'hex'), '... keeps the source''s storage_url');

-- ---------------------------------------------------------------- the full backoff schedule (job 'alpha')
SELECT is(public.fail_upload_job(pg_temp.job('alpha'), pg_temp.claim('alpha'), 'HTTP 503'), true, 'retry 1 fails');
SELECT results_eq(format('SELECT status, retry_count, error_message, lease_token IS NULL, locked_by FROM public.upload_queue WHERE id = %L', pg_temp.job('alpha')),
  $$VALUES ('pending'::text, 1, 'HTTP 503'::text, true, NULL::text)$$, 'after retry 1: pending, retry_count 1, lease cleared');
SELECT ok(pg_temp.due_in('alpha') BETWEEN interval '60 seconds' AND interval '66 seconds', 'retry 2 is due 60 s (+0-10 %) later');
SELECT is(public.fail_upload_job(pg_temp.job('alpha'), pg_temp.claim('alpha'), 'timeout'), true, 'retry 2 fails');
SELECT ok(pg_temp.due_in('alpha') BETWEEN interval '120 seconds' AND interval '132 seconds', 'retry 3 is due 120 s (+0-10 %) later');
SELECT is(public.fail_upload_job(pg_temp.job('alpha'), pg_temp.claim('alpha'), 'timeout'), true, 'retry 3 fails');
SELECT ok(pg_temp.due_in('alpha') BETWEEN interval '240 seconds' AND interval '264 seconds', 'retry 4 is due 240 s (+0-10 %) later');
SELECT is(public.fail_upload_job(pg_temp.job('alpha'), pg_temp.claim('alpha'), 'HTTP 429'), true, 'retry 4 fails');
SELECT ok(pg_temp.due_in('alpha') BETWEEN interval '480 seconds' AND interval '528 seconds', 'retry 5 is due 480 s (+0-10 %) later');
SELECT is((SELECT retry_count FROM public.upload_queue WHERE id = pg_temp.job('alpha')), 4, 'four retries counted');
SELECT is(public.fail_upload_job(pg_temp.job('alpha'), pg_temp.claim('alpha'), 'HTTP 500'), true, 'retry 5 fails');
SELECT results_eq(
  format($$SELECT q.status, q.retry_count, q.failed_at, q.error_message, s.storage_status FROM public.upload_queue AS q
            JOIN public.sources AS s ON s.id = q.source_id WHERE q.id = %L$$, pg_temp.job('alpha')),
  $$VALUES ('failed'::text, 5, now(), 'HTTP 500'::text, 'failed'::text)$$,
  'after retry 5 the job is failed with the last error and the source is failed');
SELECT is((SELECT content FROM public.upload_queue_payloads WHERE job_id = pg_temp.job('alpha')), 'alpha'::bytea,
  'the bytes of a failed job are kept');
UPDATE public.upload_queue SET next_retry_at = now() - interval '1 day' WHERE id = pg_temp.job('alpha');
SELECT is_empty($$SELECT * FROM public.claim_upload_jobs('worker-a', 10)$$, 'a failed job is never claimed');
SELECT is(pg_temp.counted('upload_retry_failures_total'), 5::bigint, 'five failed retries counted');
SELECT is(pg_temp.counted('upload_terminal_failures_total'), 1::bigint, 'one terminal failure counted');

-- ----------------------------------------------------------------------------------------------- requeue
SELECT throws_ok($$SELECT public.requeue_upload_job('99999999-9999-9999-9999-999999999999')$$, 'P0002',
  'upload job 99999999-9999-9999-9999-999999999999 does not exist', 'requeueing an unknown job is refused with P0002');
SELECT pg_temp.source('gamma') IS NOT NULL AND pg_temp.enqueue('gamma') IS NOT NULL AS created \gset
SELECT throws_ok(format('SELECT public.requeue_upload_job(%L)', pg_temp.job('gamma')), '55000',
  format('upload job %s is pending, not failed; nothing changed', pg_temp.job('gamma')),
  'requeueing a pending job is refused with 55000 naming its state');
SELECT throws_ok(format('SELECT public.requeue_upload_job(%L)', pg_temp.job('b30')), '55000',
  format('upload job %s is completed, not failed; nothing changed', pg_temp.job('b30')),
  'requeueing a completed job is refused with 55000');
SELECT is(public.requeue_upload_job(pg_temp.job('alpha')), pg_temp.job('alpha'), 'a failed job is requeued');
SELECT results_eq(
  format($$SELECT q.status, q.retry_count, q.next_retry_at, q.failed_at, s.storage_status FROM public.upload_queue AS q
            JOIN public.sources AS s ON s.id = q.source_id WHERE q.id = %L$$, pg_temp.job('alpha')),
  $$VALUES ('pending'::text, 0, now(), NULL::timestamptz, 'pending'::text)$$,
  'requeue: pending, count restarted, due now, source pending');
SELECT results_eq($$SELECT job_id, retry_count FROM public.claim_upload_jobs('worker-c', 10)$$,
  $$VALUES (pg_temp.job('alpha'), 0)$$, 'the requeued job is claimed on the next run');
UPDATE t_jobs SET token = (SELECT lease_token FROM public.upload_queue WHERE id = pg_temp.job('alpha')) WHERE name = 'alpha';
SELECT is(public.upload_job_content(pg_temp.job('alpha'), pg_temp.token('alpha')), 'alpha'::bytea, '... with the kept bytes');
SELECT is(public.complete_upload_job(pg_temp.job('alpha'), pg_temp.token('alpha')), true, '... and completed');
SELECT is((SELECT storage_status FROM public.sources WHERE id = pg_temp.src('alpha')), 'uploaded', 'the source is uploaded');

-- a non-retryable error fails the job at once; enqueueing the source again re-arms it
SELECT is(public.fail_upload_job(pg_temp.job('gamma'), pg_temp.claim('gamma'), 'HTTP 403', false), true,
  'a non-retryable failure is recorded');
SELECT results_eq(format('SELECT status, retry_count FROM public.upload_queue WHERE id = %L', pg_temp.job('gamma')),
  $$VALUES ('failed'::text, 1)$$, 'a non-retryable failure fails the job on the first retry');
SELECT is(public.enqueue_upload(pg_temp.src('gamma'), 'gamma'::bytea), pg_temp.job('gamma'),
  'enqueueing the source of a failed job re-arms that job');
SELECT results_eq(format('SELECT status, retry_count FROM public.upload_queue WHERE id = %L', pg_temp.job('gamma')),
  $$VALUES ('pending'::text, 0)$$, '... pending with the count restarted');
SELECT ok(pg_temp.due_in('gamma') BETWEEN interval '30 seconds' AND interval '33 seconds', '... retry 1 due in 30 s');

-- ---------------------------------------------------------------------------------------------- retry now
CREATE FUNCTION pg_temp.hint_of(p_sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE v_hint text;
BEGIN
  EXECUTE p_sql;
  RETURN NULL;
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS v_hint = PG_EXCEPTION_HINT;
  RETURN v_hint;
END $$;
SELECT throws_ok($$SELECT public.retry_upload_job_now(NULL)$$, '22023', 'retry_upload_job_now: p_job_id must not be NULL',
  'retry now without a job id is refused with 22023');
SELECT throws_ok($$SELECT public.retry_upload_job_now('99999999-9999-9999-9999-999999999999')$$, 'P0002',
  'upload job 99999999-9999-9999-9999-999999999999 does not exist', 'retry now of an unknown job is refused with P0002');
SELECT throws_ok(format('SELECT public.retry_upload_job_now(%L)', pg_temp.job('alpha')), '55000',
  format('upload job %s is completed, not pending; nothing changed', pg_temp.job('alpha')),
  'retry now of a completed job is refused with 55000');
SELECT pg_temp.source('delta') IS NOT NULL AND pg_temp.enqueue('delta') IS NOT NULL AS created \gset
SELECT is(public.retry_upload_job_now(pg_temp.job('delta')), pg_temp.job('delta'), 'retry now of a pending job returns its id');
SELECT results_eq(format('SELECT status, retry_count, max_retries, next_retry_at FROM public.upload_queue WHERE id = %L', pg_temp.job('delta')),
  $$VALUES ('pending'::text, 0, 5, now())$$, '... it is due now, still pending, with the same retry count and budget');
UPDATE public.upload_queue SET next_retry_at = now() - interval '1 hour' WHERE id = pg_temp.job('delta');
SELECT is(public.retry_upload_job_now(pg_temp.job('delta')), pg_temp.job('delta'), 'retry now of a job already due is accepted');
SELECT is(pg_temp.due_in('delta'), interval '-1 hour', '... and keeps its place in line (its due time is never pushed back)');
SELECT results_eq($$SELECT job_id, retry_count FROM public.claim_upload_jobs('worker-now', 10)$$,
  $$VALUES (pg_temp.job('delta'), 0)$$, 'the next claim takes it as retry 1');
UPDATE t_jobs SET token = (SELECT lease_token FROM public.upload_queue WHERE id = pg_temp.job('delta')) WHERE name = 'delta';
SELECT throws_ok(format('SELECT public.retry_upload_job_now(%L)', pg_temp.job('delta')), '55000',
  format('upload job %s is in_progress, not pending; nothing changed', pg_temp.job('delta')),
  'retry now of a job in progress is refused with 55000');
SELECT matches(pg_temp.hint_of(format('SELECT public.retry_upload_job_now(%L)', pg_temp.job('delta'))),
  '^Worker worker-now is retrying it now .*process_upload_queue\(\)', '... its hint names the worker holding it');
SELECT is(public.fail_upload_job(pg_temp.job('delta'), pg_temp.token('delta'), 'HTTP 403', false), true, 'delta fails for good');
SELECT throws_ok(format('SELECT public.retry_upload_job_now(%L)', pg_temp.job('delta')), '55000',
  format('upload job %s is failed, not pending; nothing changed', pg_temp.job('delta')),
  'retry now of a failed job is refused with 55000');
SELECT matches(pg_temp.hint_of(format('SELECT public.retry_upload_job_now(%L)', pg_temp.job('delta'))),
  'requeue_upload_job\(job_id\)', '... its hint gives the requeue instead');
SELECT results_eq(format('SELECT status, retry_count FROM public.upload_queue WHERE id = %L', pg_temp.job('delta')),
  $$VALUES ('failed'::text, 1)$$, 'refused calls changed nothing');

-- ------------------------------------------------------------- fencing: an expired lease and a late worker
SELECT pg_temp.source('fenced') IS NOT NULL AND pg_temp.enqueue('fenced') IS NOT NULL AS created \gset
CREATE TEMP TABLE t_old_token AS SELECT pg_temp.claim('fenced', 'worker-a') AS token;
UPDATE public.upload_queue SET locked_until = now() - interval '1 second' WHERE id = pg_temp.job('fenced');
CREATE TEMP TABLE t_run1 AS SELECT public.process_upload_queue() AS r;
SELECT is((SELECT (r ->> 'rescued')::int FROM t_run1), 1, 'process_upload_queue rescues the expired lease');
SELECT results_eq(
  format('SELECT status, retry_count, error_message, lease_token IS NULL FROM public.upload_queue WHERE id = %L', pg_temp.job('fenced')),
  $$VALUES ('pending'::text, 1, 'lease expired'::text, true)$$, 'the expired lease counts as failed retry 1');
SELECT ok(pg_temp.due_in('fenced') BETWEEN interval '60 seconds' AND interval '66 seconds', '... and retry 2 is due 60 s later');
SELECT is(public.complete_upload_job(pg_temp.job('fenced'), (SELECT token FROM t_old_token)), false,
  'worker A''s late completion (job pending again) returns false');
SELECT isnt(pg_temp.claim('fenced', 'worker-b'), (SELECT token FROM t_old_token), 'worker B claims it with a new token');
SELECT is(public.upload_job_content(pg_temp.job('fenced'), (SELECT token FROM t_old_token)), NULL, 'A''s token reads no bytes');
SELECT is(public.extend_upload_lease(pg_temp.job('fenced'), (SELECT token FROM t_old_token)), NULL, 'A''s token extends nothing');
SELECT is(public.fail_upload_job(pg_temp.job('fenced'), (SELECT token FROM t_old_token), 'A gave up'), false,
  'A''s failure with the old token returns false while B holds the job');
SELECT is(public.complete_upload_job(pg_temp.job('fenced'), pg_temp.token('fenced')), true, 'B completes');
SELECT is(public.complete_upload_job(pg_temp.job('fenced'), (SELECT token FROM t_old_token)), false,
  'A''s completion with the old token returns false');
SELECT is(public.fail_upload_job(pg_temp.job('fenced'), (SELECT token FROM t_old_token), 'A gave up'), false,
  'A''s failure with the old token returns false');
SELECT results_eq(
  format($$SELECT q.status, q.retry_count, q.locked_by, q.lease_token, q.error_message, s.storage_status
             FROM public.upload_queue AS q JOIN public.sources AS s ON s.id = q.source_id WHERE q.id = %L$$, pg_temp.job('fenced')),
  $$VALUES ('completed'::text, 1, 'worker-b'::text, pg_temp.token('fenced'), 'lease expired'::text, 'uploaded'::text)$$,
  'A''s late calls changed nothing: completed once, by B');

-- an expired lease on the last retry fails the job
SELECT pg_temp.source('last') IS NOT NULL AND pg_temp.enqueue('last') IS NOT NULL AS created \gset
UPDATE public.upload_queue SET retry_count = 4 WHERE id = pg_temp.job('last');
SELECT pg_temp.claim('last') IS NOT NULL AS claimed \gset
UPDATE public.upload_queue SET locked_until = now() - interval '1 second' WHERE id = pg_temp.job('last');
SELECT is(public.process_upload_queue() - 'due', '{"rescued":0,"failed":1,"pruned":0}'::jsonb,
  'an expired lease on retry 5 is a terminal failure');
SELECT results_eq(
  format($$SELECT q.status, q.retry_count, s.storage_status FROM public.upload_queue AS q
            JOIN public.sources AS s ON s.id = q.source_id WHERE q.id = %L$$, pg_temp.job('last')),
  $$VALUES ('failed'::text, 5, 'failed'::text)$$, '... job and source failed');
SELECT is(pg_temp.counted('upload_lease_expirations_total'), 2::bigint, 'both expired leases were counted');

-- ---------------------------------------------------------------------------- process: prune, due, repeat
UPDATE public.upload_queue SET completed_at = now() - interval '8 days' WHERE id = pg_temp.job('b30');
UPDATE public.upload_queue SET completed_at = now() - interval '6 days' WHERE id = pg_temp.job('b20');
UPDATE public.upload_queue SET next_retry_at = now() - interval '1 minute' WHERE id = pg_temp.job('gamma');
CREATE TEMP TABLE t_run2 AS SELECT public.process_upload_queue() AS r;
SELECT is((SELECT r FROM t_run2), '{"rescued":0,"failed":0,"pruned":1,"due":1}'::jsonb,
  'process_upload_queue returns {rescued, failed, pruned, due}: completed rows past 7 days pruned, 1 job due');
SELECT results_eq($$SELECT count(*)::int FROM public.upload_queue WHERE id IN (pg_temp.job('b30'), pg_temp.job('b20'))$$,
  $$VALUES (1)$$, 'the 8-day-old completed job is gone, the 6-day-old one is kept');
SELECT is(public.process_upload_queue(), '{"rescued":0,"failed":0,"pruned":0,"due":1}'::jsonb,
  'a second run changes nothing and reports the same due work');
UPDATE neotoma_ops.upload_queue_settings SET completed_retention = interval '1 day';
SELECT is((public.process_upload_queue() ->> 'pruned')::int, 1, 'the retention is configurable (1 day prunes the 6-day-old job)');
SELECT is((SELECT status FROM public.upload_queue WHERE id = pg_temp.job('last')), 'failed', 'failed jobs are not pruned');


-- ------------------------------------------------------------- lease-holder calls read the job by primary key
-- The partial index on in-progress jobs looks tiny to the planner but holds the dead entries of every job that
-- left in_progress since the last vacuum; calls about one job must go by primary key, never through it.
SELECT pg_temp.source('scan') IS NOT NULL AND pg_temp.enqueue('scan') IS NOT NULL AS created \gset
UPDATE public.upload_queue SET next_retry_at = now() + interval '1 hour' WHERE status = 'pending';  -- only 'scan' is due
SELECT pg_temp.claim('scan') IS NOT NULL AS claimed \gset
CREATE TEMP TABLE t_scan_before AS
SELECT pg_catalog.pg_stat_get_xact_numscans('public.upload_queue_lease_expiry_idx'::regclass) AS n;
SELECT isnt(public.extend_upload_lease(pg_temp.job('scan'), pg_temp.token('scan'), '2 minutes'), NULL,
  'extend_upload_lease (index check): the holder extends');
SELECT is(public.upload_job_content(pg_temp.job('scan'), pg_temp.token('scan')), convert_to('scan', 'UTF8'),
  'upload_job_content (index check): the holder reads the bytes');
SELECT is(public.upload_job_content_range(pg_temp.job('scan'), pg_temp.token('scan'), 1, 2), convert_to('ca', 'UTF8'),
  'upload_job_content_range (index check): the holder reads a slice');
SELECT is(public.fail_upload_job(pg_temp.job('scan'), pg_temp.token('scan'), 'HTTP 503', true), true,
  'fail_upload_job (index check): the holder fails the retry');
SELECT is(pg_catalog.pg_stat_get_xact_numscans('public.upload_queue_lease_expiry_idx'::regclass) - (SELECT n FROM t_scan_before),
  0::bigint, 'extend, content, content range and fail (with record_failure) did not scan the in-progress index');
SELECT * FROM finish();
ROLLBACK;
