-- The claim reads upload_queue_claim_idx in claim order and stops at its limit, also when due jobs are a small
-- share of a table full of completed history (a bitmap of two partial indexes would sort every due job per claim).
BEGIN;
SELECT plan(4);

CREATE FUNCTION pg_temp.plan_of(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  line text;
  whole text := '';
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
    whole := whole || line || E'\n';
  END LOOP;
  RETURN whole;
END
$$;

SELECT ok((SELECT 'enable_bitmapscan=off' = ANY (p.proconfig) FROM pg_proc p
            WHERE p.oid = 'public.claim_upload_jobs_with_content(text,integer,interval,integer,integer)'::regprocedure),
  'claim_upload_jobs_with_content runs without bitmap scans');

-- 2,000 due jobs among 600,000 completed ones (with bitmap scans allowed, this shape gets the bitmap and the sort)
INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
SELECT '25252525-2525-4525-8525-252525252525', encode(sha256(int8send(g)), 'hex'), 'text/plain', 'x', 10
  FROM generate_series(1, 2000) AS g;
INSERT INTO public.upload_queue (user_id, source_id, storage_path, content_hash, byte_size, mime_type, next_retry_at)
SELECT s.user_id, s.id, 'x', s.content_hash, 1, 'text/plain', now() - interval '1 minute'
  FROM public.sources s WHERE s.user_id = '25252525-2525-4525-8525-252525252525';
INSERT INTO public.upload_queue (user_id, source_id, storage_path, content_hash, byte_size, mime_type, status, retry_count, completed_at)
SELECT s.user_id, s.id, 'x', s.content_hash, 1, 'text/plain', 'completed', 1, now() - interval '1 hour'
  FROM public.sources s, generate_series(1, 300)
 WHERE s.user_id = '25252525-2525-4525-8525-252525252525';
ANALYZE public.upload_queue;

-- the claim's query, planned as the function plans it (generic plan, the function's settings)
SELECT set_config(split_part(c, '=', 1), split_part(c, '=', 2), true)
  FROM pg_proc p, unnest(p.proconfig) AS c
 WHERE p.oid = 'public.claim_upload_jobs_with_content(text,integer,interval,integer,integer)'::regprocedure
   AND c NOT LIKE 'search_path=%';
PREPARE claim_due(integer) AS
  SELECT q.id FROM public.upload_queue AS q
   WHERE q.status = 'pending' AND q.next_retry_at <= now()
   ORDER BY q.next_retry_at, q.id LIMIT $1 FOR UPDATE SKIP LOCKED;
SELECT alike(pg_temp.plan_of('EXECUTE claim_due(10)'), '%Index Scan using upload_queue_claim_idx%',
  'the claim walks the claim index');
SELECT unalike(pg_temp.plan_of('EXECUTE claim_due(10)'), '%Sort%', 'in claim order: nothing is sorted');
SELECT is((SELECT count(*)::int FROM public.claim_upload_jobs('plan-test', 10)), 10, 'and claims what is due');

SELECT * FROM finish();
ROLLBACK;
