-- The queued payload is held to the source it belongs to: its length must be the source's file_size (the size
-- the quota was charged for), the bucket travels with the job (a retry lands where the first attempt went),
-- and slices can be read at any offset the range function admits.
BEGIN;
SELECT plan(12);

CREATE FUNCTION pg_temp.source(p_body text, p_size bigint DEFAULT NULL) RETURNS uuid LANGUAGE sql AS $$
  INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size, storage_status)
  VALUES ('23000000-0000-4000-8000-000000000001', encode(sha256(convert_to(p_body, 'UTF8')), 'hex'), 'text/plain',
          'k', coalesce(p_size, octet_length(p_body)), 'pending')
  RETURNING id $$;

-- 8. the payload's length is the source's file_size
SELECT throws_ok($$SELECT public.enqueue_upload(pg_temp.source('seven b', 1000), convert_to('seven b', 'UTF8'))$$,
  '22023', 'p_content is 7 bytes but source''s file_size is 1000 bytes: the quota was charged for file_size',
  'a payload whose length is not the source''s file_size is refused, naming both sizes');
SELECT is((SELECT count(*)::integer FROM public.upload_queue q JOIN public.sources s ON s.id = q.source_id
            WHERE s.user_id = '23000000-0000-4000-8000-000000000001'), 0, 'and nothing is queued');
SELECT lives_ok($$SELECT public.enqueue_upload(pg_temp.source('exact'), convert_to('exact', 'UTF8'))$$,
  'the exact length is accepted');

-- 7. the bucket travels with the job
CREATE TEMP TABLE jobs AS
SELECT 'archived' AS name, public.enqueue_upload(pg_temp.source('archived'), convert_to('archived', 'UTF8'), NULL, 'archive') AS id
UNION ALL
SELECT 'default', public.enqueue_upload(pg_temp.source('default'), convert_to('default', 'UTF8'));
SELECT is((SELECT bucket FROM public.upload_queue WHERE id = (SELECT id FROM jobs WHERE name = 'archived')), 'archive',
  'enqueue_upload stores the bucket it is given');
SELECT is((SELECT bucket FROM public.upload_queue WHERE id = (SELECT id FROM jobs WHERE name = 'default')), 'sources',
  'and sources by default');
SELECT throws_ok($$SELECT public.enqueue_upload(pg_temp.source('no bucket'), convert_to('no bucket', 'UTF8'), NULL, '')$$,
  '22023', NULL, 'an empty bucket is refused, naming p_bucket');
SELECT throws_ok($$SELECT public.enqueue_upload(pg_temp.source('slash'), convert_to('slash', 'UTF8'), NULL, 'a/b')$$,
  '22023', NULL, 'a bucket with a slash is refused');

-- 6. slices at the largest offset the function admits
UPDATE public.upload_queue SET next_retry_at = now() - interval '1 second'
 WHERE id = (SELECT q.id FROM public.upload_queue q JOIN public.sources s ON s.id = q.source_id
              WHERE s.user_id = '23000000-0000-4000-8000-000000000001' AND q.bucket = 'archive');
UPDATE public.upload_queue SET next_retry_at = now() + interval '1 hour'
 WHERE status = 'pending' AND bucket <> 'archive';
CREATE TEMP TABLE claimed AS SELECT job_id, lease_token FROM public.claim_upload_jobs('w-23', 1);
SELECT is((SELECT public.upload_job_content_range(job_id, lease_token, 2147483647, 10) FROM claimed), '\x'::bytea,
  'offset 2147483647 (admitted) gives an empty slice instead of an integer overflow');
SELECT is((SELECT public.upload_job_content_range(job_id, lease_token, 8, 10) FROM claimed), '\x'::bytea,
  'an offset at the end gives an empty slice');
SELECT is((SELECT convert_from(public.upload_job_content_range(job_id, lease_token, 5, 100), 'UTF8') FROM claimed), 'ved',
  'a slice past the end is cut at the end');
SELECT throws_ok($$SELECT public.upload_job_content_range(job_id, lease_token, 2147483648, 10) FROM claimed$$, '22023',
  NULL, 'an offset beyond the admitted range is refused, naming p_offset');
SELECT is((SELECT convert_from(public.upload_job_content_range(job_id, lease_token, 0, 3), 'UTF8') FROM claimed), 'arc',
  'ordinary slices are unchanged');

SELECT * FROM finish();
ROLLBACK;
