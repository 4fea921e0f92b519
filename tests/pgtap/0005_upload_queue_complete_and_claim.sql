-- complete_and_claim_upload_jobs() (docs/upload-queue.md, "SQL interface"): complete_upload_jobs() then
-- claim_upload_jobs_with_content() in one call and one transaction. Rows: one per completion element in input
-- order (completed true/false, claim columns NULL), then the claimed jobs (completed NULL); fencing per job; bad
-- arguments of either part change nothing.
BEGIN;
SELECT plan(21);

CREATE TEMP TABLE t_jobs (name text PRIMARY KEY, source_id uuid, job_id uuid, token uuid, bytes bytea);
CREATE TEMP TABLE t_counters_before AS SELECT * FROM neotoma_ops.upload_queue_counter_totals();
-- nothing else may be due while this file claims
UPDATE public.upload_queue SET next_retry_at = now() + interval '1 day' WHERE status = 'pending';

CREATE FUNCTION pg_temp.job_of(p_name text, p_size integer) RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE v_bytes bytea; v_source uuid; v_job uuid;
BEGIN
  v_bytes := substring(convert_to(repeat(p_name, p_size), 'UTF8') FROM 1 FOR p_size);
  INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size, storage_status)
  VALUES ('33333333-3333-4333-8333-333333333333', encode(sha256(v_bytes), 'hex'), 'application/octet-stream',
          'x/' || encode(sha256(v_bytes), 'hex'), p_size, 'pending')
  RETURNING id INTO v_source;
  v_job := public.enqueue_upload(v_source, v_bytes);
  INSERT INTO t_jobs VALUES (p_name, v_source, v_job, NULL, v_bytes);
  RETURN v_job;
END $$;
CREATE FUNCTION pg_temp.job(p_name text) RETURNS uuid LANGUAGE sql STABLE AS $$ SELECT job_id FROM t_jobs WHERE name = p_name $$;
CREATE FUNCTION pg_temp.token(p_name text) RETURNS uuid LANGUAGE sql STABLE AS $$ SELECT token FROM t_jobs WHERE name = p_name $$;
CREATE FUNCTION pg_temp.status(p_name text) RETURNS text LANGUAGE sql STABLE AS $$
  SELECT q.status FROM public.upload_queue AS q WHERE q.id = pg_temp.job(p_name) $$;
CREATE FUNCTION pg_temp.due(p_names text[]) RETURNS void LANGUAGE sql AS $$
  UPDATE public.upload_queue AS q SET next_retry_at = now() - interval '1 minute' + make_interval(secs => array_position(p_names, t.name))
    FROM t_jobs AS t WHERE t.job_id = q.id AND t.name = ANY (p_names) $$;
CREATE FUNCTION pg_temp.counted(p_counter text) RETURNS bigint LANGUAGE sql STABLE AS $$
  SELECT a.value - b.value FROM neotoma_ops.upload_queue_counter_totals() AS a
    JOIN t_counters_before AS b USING (counter) WHERE a.counter = p_counter $$;

SELECT pg_temp.job_of(n, s) FROM (VALUES ('a', 10), ('b', 20), ('c', 30), ('d', 40)) AS v(n, s);

-- a and b are held by this worker
SELECT pg_temp.due(ARRAY['a', 'b']);
UPDATE t_jobs AS t SET token = j.lease_token FROM public.claim_upload_jobs_with_content('w1', 2) AS j WHERE j.job_id = t.job_id;
SELECT is((SELECT count(*)::int FROM t_jobs WHERE token IS NOT NULL), 2, 'a and b are claimed');
SELECT pg_temp.due(ARRAY['c', 'd']);

-- ------------------------------------------------------------------------------ bad arguments change nothing
SELECT throws_ok(
  $$SELECT * FROM public.complete_and_claim_upload_jobs(ARRAY[pg_temp.job('a')], ARRAY[pg_temp.token('a')], NULL, 'w1', 0)$$,
  '22023', 'p_limit must be between 1 and 1000, got 0', 'a bad claim argument is refused like claim_upload_jobs_with_content');
SELECT is(pg_temp.status('a'), 'in_progress', 'and the completion in the same call did not happen');
SELECT throws_ok(
  $$SELECT * FROM public.complete_and_claim_upload_jobs(ARRAY[pg_temp.job('a')], ARRAY[]::uuid[], NULL, 'w1', 1)$$,
  '22023', NULL, 'a bad completion argument is refused like complete_upload_jobs');
SELECT is((SELECT count(*)::int FROM public.upload_queue WHERE status = 'in_progress' AND id IN (pg_temp.job('c'), pg_temp.job('d'))), 0,
  'and nothing was claimed');

-- ------------------------------------------------------------------------------ one call: complete a and b (b with a stale token), claim c
CREATE TEMP TABLE t_out AS
SELECT row_number() OVER () AS n, r.*
  FROM public.complete_and_claim_upload_jobs(ARRAY[pg_temp.job('a'), pg_temp.job('b')],
                                             ARRAY[pg_temp.token('a'), gen_random_uuid()],
                                             ARRAY['stored/a', NULL], 'w1', 1) AS r;
SELECT is((SELECT count(*)::int FROM t_out), 3, 'one row per completion element, then one per claimed job');
SELECT results_eq($$SELECT job_id, completed FROM t_out WHERE n <= 2 ORDER BY n$$,
  $$VALUES (pg_temp.job('a'), true), (pg_temp.job('b'), false)$$,
  'the completion rows come first, in input order: a completed, b refused (stale token)');
SELECT ok((SELECT bool_and(lease_token IS NULL AND source_id IS NULL AND content IS NULL) FROM t_out WHERE n <= 2),
  'completion rows carry no claim columns');
SELECT is((SELECT job_id FROM t_out WHERE n = 3), pg_temp.job('c'), 'then the claimed job, oldest due first');
SELECT ok((SELECT completed IS NULL AND lease_token IS NOT NULL FROM t_out WHERE n = 3), 'a claimed row has completed NULL and a lease token');
SELECT is((SELECT content FROM t_out WHERE n = 3), (SELECT bytes FROM t_jobs WHERE name = 'c'), 'a small payload comes with the claim');
SELECT is((SELECT lease_token FROM t_out WHERE n = 3), (SELECT lease_token FROM public.upload_queue WHERE id = pg_temp.job('c')),
  'the lease token returned is the job''s current one');
SELECT is(pg_temp.status('a'), 'completed', 'a is completed');
SELECT is((SELECT storage_status || ' ' || storage_url FROM public.sources WHERE id = (SELECT source_id FROM t_jobs WHERE name = 'a')),
  'uploaded stored/a', 'its source is uploaded at the given URL');
SELECT is((SELECT count(*)::int FROM public.upload_queue_payloads WHERE job_id = pg_temp.job('a')), 0, 'its bytes are deleted');
SELECT is(pg_temp.status('b'), 'in_progress', 'b, completed with a stale token, is untouched');
SELECT is(pg_temp.status('d'), 'pending', 'd was not claimed (limit 1)');
SELECT is(pg_temp.counted('upload_completed_total'), 1::bigint, 'upload_completed_total counts the one completion');
SELECT is(pg_temp.counted('upload_retries_total'), 3::bigint, 'upload_retries_total counts every claim (a, b, then c)');

-- ------------------------------------------------------------------------------ repeated completion, nothing to claim
UPDATE public.upload_queue SET next_retry_at = now() + interval '1 day' WHERE id = pg_temp.job('d');
SELECT results_eq(
  $$SELECT job_id, completed FROM public.complete_and_claim_upload_jobs(ARRAY[pg_temp.job('a')], ARRAY[pg_temp.token('a')], NULL, 'w1', 5)$$,
  $$VALUES (pg_temp.job('a'), true)$$,
  'repeating a completion with the token that completed it answers true; with nothing due, no claimed rows follow');
SELECT results_eq(
  $$SELECT count(*)::int, count(completed)::int FROM public.complete_and_claim_upload_jobs(ARRAY[]::uuid[], ARRAY[]::uuid[], NULL, 'w1', 5)$$,
  $$VALUES (0, 0)$$,
  'no completions and nothing due: no rows');

SELECT * FROM finish();
ROLLBACK;
