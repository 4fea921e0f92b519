-- Storage's upload limit: where it is known (the global limit an operator recorded; the bucket's file_size_limit,
-- read from storage.buckets where Supabase Storage shares the database, is tested against the real Storage server
-- in tests/ts/supabase-guide.test.ts), a larger file is refused before it is uploaded or queued, and the plans that
-- promise more are reported.
BEGIN;
SELECT plan(14);

CREATE FUNCTION pg_temp.rejections() RETURNS float8 LANGUAGE sql AS $$
  SELECT value FROM public.ops_metrics() WHERE metric = 'quota_rejections_total' AND labels ->> 'resource' = 'file_size' $$;
CREATE FUNCTION pg_temp.detail(p_sql text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE d text;
BEGIN
  EXECUTE p_sql;
  RETURN NULL;
EXCEPTION WHEN SQLSTATE 'PT413' THEN
  GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
  RETURN d::jsonb;
END $$;

SELECT is((SELECT upload_limit_bytes FROM neotoma_ops.storage_settings), NULL::bigint, 'the global upload limit is unknown until recorded');
SELECT is((SELECT row(l.limit_bytes, l.limited_by)::text FROM public.storage_upload_limit() AS l)
            = row(NULL::bigint, NULL::text)::text OR to_regclass('storage.buckets') IS NOT NULL, true,
  'with no limit known, storage_upload_limit() returns none');
SELECT lives_ok($$SELECT public.check_storage_quota('09090909-0909-4909-8909-090909090909', 50000000)$$,
  'a file the plan allows passes the check while Storage''s limit is unknown');

UPDATE neotoma_ops.storage_settings SET upload_limit_bytes = 1000;
SELECT results_eq($$SELECT limit_bytes, limited_by FROM public.storage_upload_limit('no-such-bucket')$$,
  $$VALUES (1000::bigint, 'the global upload limit'::text)$$, 'the recorded global limit is the limit');
SELECT lives_ok($$SELECT public.check_storage_quota('09090909-0909-4909-8909-090909090909', 1000)$$, 'a file of exactly the limit passes');
CREATE TEMP TABLE t_before AS SELECT pg_temp.rejections() AS n;
SELECT throws_ok($$SELECT public.check_storage_quota('09090909-0909-4909-8909-090909090909', 1001)$$, 'PT413',
  'File too large for storage: 1001 B exceeds 1000 B, the largest object Storage accepts (the global upload limit)',
  'one byte more is refused before any upload, naming the storage limit');
SELECT is(pg_temp.detail($$SELECT public.check_storage_quota('09090909-0909-4909-8909-090909090909', 1001)$$) - 'user_id',
  '{"code": "FILE_TOO_LARGE", "limit": "storage", "bucket": "sources", "file_bytes": 1001, "limited_by": "the global upload limit", "max_file_bytes": 1000}'::jsonb,
  'DETAIL: FILE_TOO_LARGE with limit "storage" and which limit');
SELECT is(pg_temp.rejections() - (SELECT n FROM t_before), 2::float8, 'each refusal is counted as a file-size rejection');

-- the queue refuses bytes Storage would refuse for good, and writes nothing
INSERT INTO public.sources (id, user_id, content_hash, mime_type, storage_url, file_size, storage_status)
VALUES ('09090909-0000-4000-8000-000000000001', '09090909-0909-4909-8909-090909090909',
        encode(sha256(convert_to(repeat('x', 1001), 'UTF8')), 'hex'), 'text/plain', 'k', 1001, 'pending');
SELECT throws_ok($$SELECT public.enqueue_upload('09090909-0000-4000-8000-000000000001', convert_to(repeat('x', 1001), 'UTF8'))$$,
  'PT413', NULL, 'enqueue_upload refuses a payload over the storage limit');
SELECT is((SELECT count(*)::int FROM public.upload_queue WHERE source_id = '09090909-0000-4000-8000-000000000001'), 0,
  '... and queues nothing');

-- plans and overrides that promise more than Storage takes
SELECT set_eq($$SELECT object FROM neotoma_ops.storage_limit_problems()$$, ARRAY['plan enterprise', 'plan free', 'plan pro'],
  'every plan allowing larger files is reported');
UPDATE public.plans SET max_file_bytes = 1000 WHERE id IN ('free', 'pro');
UPDATE public.storage_usage SET max_file_bytes_override = 5000 WHERE user_id = '09090909-0909-4909-8909-090909090909';
SELECT set_eq($$SELECT object FROM neotoma_ops.storage_limit_problems()$$,
  ARRAY['plan enterprise', 'user 09090909-0909-4909-8909-090909090909'], 'fixed plans drop out; a user override over it is reported');
SELECT is((SELECT fix FROM neotoma_ops.storage_limit_problems() WHERE object = 'plan enterprise'),
  'UPDATE public.plans SET max_file_bytes = 1000 WHERE id = ''enterprise''; (or raise the global upload limit)',
  'with the statement that fixes it');
SELECT ok(EXISTS (SELECT 1 FROM neotoma_ops.doctor(false) WHERE kind = 'storage limit' AND object = 'plan enterprise'),
  'doctor reports them as storage limits');

SELECT * FROM finish();
ROLLBACK;
