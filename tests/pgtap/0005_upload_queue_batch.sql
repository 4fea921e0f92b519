-- Upload queue extensions for throughput (docs/upload-queue.md, "Fewer round trips"):
-- claim_upload_jobs_with_content() returns small payloads with the claim (equal to the stored bytes, bounded per
-- job and per call, NULL otherwise) and claims like claim_upload_jobs(); complete_upload_jobs() completes a
-- batch, fenced per job (stale tokens refused without affecting the rest), idempotent, validated.
BEGIN;
SELECT plan(33);

CREATE TEMP TABLE t_jobs (name text PRIMARY KEY, source_id uuid, job_id uuid, token uuid, bytes bytea);
CREATE TEMP TABLE t_counters_before AS SELECT * FROM neotoma_ops.upload_queue_counter_totals();
-- nothing else may be due while this file claims
UPDATE public.upload_queue SET next_retry_at = now() + interval '1 day' WHERE status = 'pending';

-- a pending source with p_size bytes derived from its name, and its queued job
CREATE FUNCTION pg_temp.job_of(p_name text, p_size integer) RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE v_bytes bytea; v_source uuid; v_job uuid;
BEGIN
  SELECT coalesce(string_agg(sha256(convert_to(p_name || i, 'UTF8')), ''::bytea), ''::bytea) INTO v_bytes
    FROM generate_series(1, (p_size + 31) / 32) AS i;
  v_bytes := substring(v_bytes FROM 1 FOR p_size);
  INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size, storage_status)
  VALUES ('22222222-2222-2222-2222-222222222222', encode(sha256(v_bytes), 'hex'), 'application/octet-stream',
          '22222222-2222-2222-2222-222222222222/' || encode(sha256(v_bytes), 'hex'), p_size, 'pending')
  RETURNING id INTO v_source;
  v_job := public.enqueue_upload(v_source, v_bytes);
  INSERT INTO t_jobs VALUES (p_name, v_source, v_job, NULL, v_bytes);
  RETURN v_job;
END $$;
CREATE FUNCTION pg_temp.job(p_name text) RETURNS uuid LANGUAGE sql STABLE AS $$ SELECT job_id FROM t_jobs WHERE name = p_name $$;
CREATE FUNCTION pg_temp.token(p_name text) RETURNS uuid LANGUAGE sql STABLE AS $$ SELECT token FROM t_jobs WHERE name = p_name $$;
CREATE FUNCTION pg_temp.due(p_names text[], p_ago interval DEFAULT '1 minute') RETURNS void LANGUAGE sql AS $$
  UPDATE public.upload_queue AS q SET next_retry_at = now() - p_ago + make_interval(secs => array_position(p_names, t.name))
    FROM t_jobs AS t WHERE t.job_id = q.id AND t.name = ANY (p_names)
$$;
CREATE FUNCTION pg_temp.counted(p_counter text) RETURNS bigint LANGUAGE sql STABLE AS $$
  SELECT a.value - b.value FROM neotoma_ops.upload_queue_counter_totals() AS a
    JOIN t_counters_before AS b USING (counter) WHERE a.counter = p_counter
$$;

SELECT pg_temp.job_of(n, s) FROM (VALUES ('empty', 0), ('small', 100), ('mid', 3000), ('big', 200000), ('s2', 50),
                                         ('s3', 60), ('s4', 70)) AS v(n, s);

-- ------------------------------------------------------------------------------ claim with content: arguments
SELECT throws_ok($$SELECT * FROM public.claim_upload_jobs_with_content('w', 0)$$, '22023',
  'p_limit must be between 1 and 1000, got 0', 'p_limit 0 is refused like claim_upload_jobs');
SELECT throws_ok($$SELECT * FROM public.claim_upload_jobs_with_content('', 1)$$, '22023', NULL, 'an empty worker id is refused');
SELECT throws_ok($$SELECT * FROM public.claim_upload_jobs_with_content('w', 1, interval '0')$$, '22023', NULL, 'a lease of 0 is refused');
SELECT throws_ok($$SELECT * FROM public.claim_upload_jobs_with_content('w', 1, interval '1 minute', -1)$$, '22023',
  'p_inline_max_bytes must be between 0 and 67108864 (64 MiB), got -1', 'a negative p_inline_max_bytes is refused');
SELECT throws_ok($$SELECT * FROM public.claim_upload_jobs_with_content('w', 1, interval '1 minute', 67108865)$$, '22023', NULL,
  'p_inline_max_bytes over 64 MiB is refused');
SELECT throws_ok($$SELECT * FROM public.claim_upload_jobs_with_content('w', 1, interval '1 minute', 1024, NULL)$$, '22023',
  'p_inline_total_bytes must be between 0 and 268435456 (256 MiB), got NULL', 'a NULL p_inline_total_bytes is refused');
SELECT throws_ok($$SELECT * FROM public.claim_upload_jobs_with_content('w', 1, interval '1 minute', 1024, 268435457)$$, '22023', NULL,
  'p_inline_total_bytes over 256 MiB is refused');
SELECT is((SELECT count(*) FROM public.upload_queue WHERE status = 'in_progress' AND id IN (SELECT job_id FROM t_jobs)), 0::bigint,
  'refused claims claimed nothing');

-- ------------------------------------------------------------------------------ claim with content: bytes
SELECT pg_temp.due(ARRAY['empty', 'small', 'mid', 'big']);
CREATE TEMP TABLE t_claim AS
  SELECT row_number() OVER () AS ord, * FROM public.claim_upload_jobs_with_content('inline-w', 10, interval '1 minute', 4096);
UPDATE t_jobs AS t SET token = c.lease_token FROM t_claim AS c WHERE c.job_id = t.job_id;
SELECT results_eq($$SELECT job_id FROM t_claim ORDER BY ord$$,
  $$VALUES (pg_temp.job('empty')), (pg_temp.job('small')), (pg_temp.job('mid')), (pg_temp.job('big'))$$,
  'claims the due jobs oldest first');
SELECT is((SELECT c.content FROM t_claim AS c WHERE c.job_id = pg_temp.job('small')),
          (SELECT bytes FROM t_jobs WHERE name = 'small'), 'a small payload comes with the claim, equal to the queued bytes');
SELECT is((SELECT c.content FROM t_claim AS c WHERE c.job_id = pg_temp.job('mid')),
          (SELECT p.content FROM public.upload_queue_payloads AS p WHERE p.job_id = pg_temp.job('mid')),
          'a payload at most p_inline_max_bytes equals the stored bytes');
SELECT is((SELECT c.content FROM t_claim AS c WHERE c.job_id = pg_temp.job('empty')), ''::bytea,
  'an empty payload comes back empty, not NULL');
SELECT is((SELECT c.content FROM t_claim AS c WHERE c.job_id = pg_temp.job('big')), NULL::bytea,
  'a payload over p_inline_max_bytes is not inlined (NULL) ...');
SELECT is(public.upload_job_content(pg_temp.job('big'), pg_temp.token('big')), (SELECT bytes FROM t_jobs WHERE name = 'big'),
  '... and its holder reads it with its token');
SELECT ok((SELECT bool_and(q.status = 'in_progress' AND q.locked_by = 'inline-w' AND q.lease_token = c.lease_token
                           AND q.locked_until = c.locked_until)
             FROM t_claim AS c JOIN public.upload_queue AS q ON q.id = c.job_id),
  'claimed jobs are in progress with the returned lease');
SELECT is(pg_temp.counted('upload_retries_total'), 4::bigint, 'upload_retries_total counts the 4 claims');

-- the per-call budget: s2 (50) + s3 (60) fit in 115 bytes, s4 (70) would not
SELECT pg_temp.due(ARRAY['s2', 's3', 's4']);
CREATE TEMP TABLE t_budget AS
  SELECT row_number() OVER () AS ord, * FROM public.claim_upload_jobs_with_content('inline-w', 10, interval '1 minute', 1024, 115);
SELECT results_eq($$SELECT job_id, content IS NOT NULL FROM t_budget ORDER BY ord$$,
  $$VALUES (pg_temp.job('s2'), true), (pg_temp.job('s3'), true), (pg_temp.job('s4'), false)$$,
  'inlined bytes stop at p_inline_total_bytes per call; later jobs come without content');
UPDATE t_jobs AS t SET token = c.lease_token FROM t_budget AS c WHERE c.job_id = t.job_id;

-- ------------------------------------------------------------------------------ batch complete
SELECT throws_ok($$SELECT * FROM public.complete_upload_jobs(ARRAY[gen_random_uuid()], ARRAY[]::uuid[])$$, '22023', NULL,
  'arrays of different lengths are refused');
SELECT throws_ok($$SELECT * FROM public.complete_upload_jobs(NULL, ARRAY[]::uuid[])$$, '22023', NULL, 'NULL job ids are refused');
SELECT throws_ok($$SELECT * FROM public.complete_upload_jobs(
                    (SELECT array_agg(gen_random_uuid()) FROM generate_series(1, 1001)),
                    (SELECT array_agg(gen_random_uuid()) FROM generate_series(1, 1001)))$$, '22023',
  'p_job_ids may hold at most 1000 jobs, got 1001', 'more than 1000 jobs are refused');
SELECT is_empty($$SELECT * FROM public.complete_upload_jobs(ARRAY[]::uuid[], ARRAY[]::uuid[])$$, 'an empty batch completes nothing');

-- a batch with a stale token in the middle: the others complete, the stale one changes nothing
SELECT results_eq(
  $$SELECT job_id, completed FROM public.complete_upload_jobs(
      ARRAY[pg_temp.job('small'), pg_temp.job('mid'), pg_temp.job('big')],
      ARRAY[pg_temp.token('small'), gen_random_uuid(), pg_temp.token('big')],
      ARRAY['custom/small', NULL, ''])$$,
  $$VALUES (pg_temp.job('small'), true), (pg_temp.job('mid'), false), (pg_temp.job('big'), true)$$,
  'one row per job in input order: completed, refused (stale token), completed');
SELECT results_eq($$SELECT q.status, p.job_id IS NULL, s.storage_status FROM public.upload_queue AS q
                     JOIN public.sources AS s ON s.id = q.source_id LEFT JOIN public.upload_queue_payloads AS p ON p.job_id = q.id
                    WHERE q.id IN (pg_temp.job('small'), pg_temp.job('big')) ORDER BY q.id$$,
  $$VALUES ('completed', true, 'uploaded'), ('completed', true, 'uploaded')$$,
  'completed jobs: job completed, bytes deleted, source uploaded');
SELECT results_eq($$SELECT q.status, q.lease_token = pg_temp.token('mid'), p.content = (SELECT bytes FROM t_jobs WHERE name = 'mid'),
                           s.storage_status
                      FROM public.upload_queue AS q JOIN public.sources AS s ON s.id = q.source_id
                      JOIN public.upload_queue_payloads AS p ON p.job_id = q.id WHERE q.id = pg_temp.job('mid')$$,
  $$VALUES ('in_progress', true, true, 'pending')$$, 'the job with the stale token is untouched: in progress, bytes kept, source pending');
SELECT results_eq($$SELECT storage_url FROM public.sources WHERE id IN (SELECT source_id FROM t_jobs WHERE name IN ('small', 'big'))
                     ORDER BY storage_url = 'custom/small' DESC$$,
  $$VALUES ('custom/small'), ('22222222-2222-2222-2222-222222222222/' || encode(sha256((SELECT bytes FROM t_jobs WHERE name = 'big')), 'hex'))$$,
  'storage_url is set when given, kept when NULL or empty');
SELECT is(pg_temp.counted('upload_completed_total'), 2::bigint, 'upload_completed_total counts the 2 completed jobs');

-- repeating with the completing token is harmless and true; a job completed by another token stays refused
SELECT results_eq($$SELECT completed FROM public.complete_upload_jobs(ARRAY[pg_temp.job('small'), pg_temp.job('small')],
                                                                       ARRAY[pg_temp.token('small'), gen_random_uuid()])$$,
  $$VALUES (true), (false)$$, 'a repeated completion is true with the completing token, false with another');
SELECT is(pg_temp.counted('upload_completed_total'), 2::bigint, 'a repeated completion is not counted again');

-- the stale-lease case: the lease was taken back (rescued) and claimed again; the old holder is refused
UPDATE public.upload_queue SET locked_until = now() - interval '1 second' WHERE id = pg_temp.job('mid');
SELECT is((public.process_upload_queue() ->> 'rescued')::integer, 1, 'the expired lease of mid is rescued');
UPDATE public.upload_queue SET next_retry_at = now() - interval '1 second' WHERE id = pg_temp.job('mid');
CREATE TEMP TABLE t_new AS SELECT lease_token FROM public.claim_upload_jobs_with_content('other-w', 1);
SELECT results_eq($$SELECT completed FROM public.complete_upload_jobs(ARRAY[pg_temp.job('mid'), pg_temp.job('mid')],
                                                                       ARRAY[pg_temp.token('mid'), (SELECT lease_token FROM t_new)])$$,
  $$VALUES (false), (true)$$, 'after a rescue and a new claim the old token is refused and the new holder completes');
SELECT is(public.complete_upload_job(pg_temp.job('s2'), pg_temp.token('s2')), true,
  'complete_upload_job() (one job) still completes with the current token');

-- the batch completion never reads its jobs through the partial index on in-progress jobs (the planner thinks
-- that index tiny, but it holds the dead entries of every job completed since the last vacuum); it goes by
-- primary key (or, on a table this small, a sequential scan)
SELECT pg_temp.job_of(n, s) FROM (VALUES ('pk1', 40), ('pk2', 45)) AS v(n, s);
SELECT pg_temp.due(ARRAY['pk1', 'pk2']);
CREATE TEMP TABLE t_last AS SELECT job_id, lease_token FROM public.claim_upload_jobs_with_content('w-last', 2);
CREATE TEMP TABLE t_scans AS
SELECT pg_catalog.pg_stat_get_xact_numscans('public.upload_queue_lease_expiry_idx'::regclass) AS lease_idx;
SELECT results_eq($$SELECT completed FROM public.complete_upload_jobs((SELECT array_agg(job_id ORDER BY job_id) FROM t_last),
                                                                       (SELECT array_agg(lease_token ORDER BY job_id) FROM t_last))$$,
  $$VALUES (true), (true)$$, 'a batch of two completes');
SELECT is(pg_catalog.pg_stat_get_xact_numscans('public.upload_queue_lease_expiry_idx'::regclass) - (SELECT lease_idx FROM t_scans),
  0::bigint, 'the batch completion did not scan the in-progress (lease expiry) index');

SELECT * FROM finish();
ROLLBACK;
