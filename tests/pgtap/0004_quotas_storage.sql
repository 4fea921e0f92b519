-- Storage quota: exact limit, refusal writes nothing, bulk all-or-nothing, dedup retries, updates, moves,
-- deletes (single, bulk, cascade), clamping, per-file limit, big counters, plan changes, error contract,
-- rejection counters, enforcement for service_role and the table owner, bad input.
BEGIN;
SELECT plan(57);

CREATE FUNCTION pg_temp.h(k text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT md5(k) || md5(k || '.') $$;
CREATE FUNCTION pg_temp.add(u uuid, k text, size bigint) RETURNS void LANGUAGE sql AS $$
  INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
  VALUES (u, pg_temp.h(k), 'application/pdf', u::text || '/' || pg_temp.h(k), size) $$;
CREATE FUNCTION pg_temp.usage(u uuid) RETURNS text LANGUAGE sql AS $$
  SELECT coalesce((SELECT total_bytes || '/' || total_sources FROM public.storage_usage WHERE user_id = u), 'none') $$;
CREATE FUNCTION pg_temp.rejections(r text) RETURNS bigint LANGUAGE sql AS $$
  SELECT rejections FROM neotoma_ops.quota_rejection_counts() WHERE resource = r $$;
CREATE FUNCTION pg_temp.limit_to(u uuid, n bigint) RETURNS void LANGUAGE sql AS $$
  SELECT public.set_user_plan(u, 'free');
  UPDATE public.storage_usage SET storage_limit_bytes_override = n WHERE user_id = u $$;

-- exact limit: reaching it is allowed, one byte more is refused, nothing written
SELECT pg_temp.limit_to('11000000-0000-4000-8000-000000000001', 1000);
SELECT lives_ok($$SELECT pg_temp.add('11000000-0000-4000-8000-000000000001', 'a', 600)$$, 'insert of 600 of 1000 bytes');
SELECT lives_ok($$SELECT pg_temp.add('11000000-0000-4000-8000-000000000001', 'b', 400)$$, 'insert reaching the limit exactly is allowed');
SELECT throws_ok($$SELECT pg_temp.add('11000000-0000-4000-8000-000000000001', 'c', 1)$$, 'PT402',
  'Storage quota exceeded: 1000 B of 1000 B used on plan free; this upload needs 1 B', 'one byte more is refused with PT402');
SELECT is((SELECT count(*)::integer FROM public.sources WHERE user_id = '11000000-0000-4000-8000-000000000001'), 2,
  'the refused statement wrote no source');
SELECT is(pg_temp.usage('11000000-0000-4000-8000-000000000001'), '1000/2', 'counter is exactly at the limit');

-- a multi-row insert that would cross the limit is refused whole
SELECT pg_temp.limit_to('12000000-0000-4000-8000-000000000002', 1000);
SELECT throws_ok($$INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
  SELECT '12000000-0000-4000-8000-000000000002', pg_temp.h('m' || i), 'text/plain', 'k', 400 FROM generate_series(1, 3) i$$,
  'PT402', NULL, 'a 3-row insert of 1200 bytes into 1000 is refused');
SELECT is((SELECT count(*)::integer FROM public.sources WHERE user_id = '12000000-0000-4000-8000-000000000002'), 0,
  'the refused bulk insert wrote nothing');
SELECT is(pg_temp.usage('12000000-0000-4000-8000-000000000002'), '0/0', 'counter unchanged by the refused bulk insert');

-- dedup retry counts nothing
SELECT pg_temp.add('12000000-0000-4000-8000-000000000002', 'd', 400);
INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
VALUES ('12000000-0000-4000-8000-000000000002', pg_temp.h('d'), 'application/pdf', 'k', 400)
ON CONFLICT (user_id, content_hash) DO NOTHING;
SELECT is(pg_temp.usage('12000000-0000-4000-8000-000000000002'), '400/1', 'INSERT ... ON CONFLICT DO NOTHING of existing content changes no counter');

-- updates of file_size move the counter by the difference
UPDATE public.sources SET file_size = 500 WHERE user_id = '12000000-0000-4000-8000-000000000002';
SELECT is(pg_temp.usage('12000000-0000-4000-8000-000000000002'), '500/1', 'file_size 400 -> 500 adds 100');
UPDATE public.sources SET file_size = 100 WHERE user_id = '12000000-0000-4000-8000-000000000002';
SELECT is(pg_temp.usage('12000000-0000-4000-8000-000000000002'), '100/1', 'file_size 500 -> 100 removes 400');
SELECT throws_ok($$UPDATE public.sources SET file_size = 1001 WHERE user_id = '12000000-0000-4000-8000-000000000002'$$,
  'PT402', NULL, 'an update past the limit is refused');
UPDATE public.sources SET mime_type = 'text/plain' WHERE user_id = '12000000-0000-4000-8000-000000000002';
SELECT is(pg_temp.usage('12000000-0000-4000-8000-000000000002'), '100/1', 'an update of other columns changes no counter');

-- moving a source to another user moves the bytes
UPDATE public.sources SET user_id = '13000000-0000-4000-8000-000000000003' WHERE user_id = '12000000-0000-4000-8000-000000000002';
SELECT is(pg_temp.usage('12000000-0000-4000-8000-000000000002') || ' ' || pg_temp.usage('13000000-0000-4000-8000-000000000003'),
  '0/0 100/1', 'moving a source to another user moves bytes and count');

-- deletes: single, bulk of 1000, cascade
DELETE FROM public.sources WHERE user_id = '13000000-0000-4000-8000-000000000003';
SELECT is(pg_temp.usage('13000000-0000-4000-8000-000000000003'), '0/0', 'a single delete decrements');
INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
SELECT '14000000-0000-4000-8000-000000000004', pg_temp.h('bulk' || i), 'text/plain', 'k', 1000 FROM generate_series(1, 1000) i;
SELECT is(pg_temp.usage('14000000-0000-4000-8000-000000000004'), '1000000/1000', 'a 1000-row insert counts once per user, exactly');
DELETE FROM public.sources WHERE user_id = '14000000-0000-4000-8000-000000000004';
SELECT is(pg_temp.usage('14000000-0000-4000-8000-000000000004'), '0/0', 'a bulk delete of 1000 rows decrements to zero');

CREATE TABLE public.quota_test_batches (id uuid PRIMARY KEY);
ALTER TABLE public.sources ADD COLUMN quota_test_batch uuid REFERENCES public.quota_test_batches (id) ON DELETE CASCADE;
INSERT INTO public.quota_test_batches VALUES ('15000000-0000-4000-8000-0000000000ba');
INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size, quota_test_batch)
SELECT '15000000-0000-4000-8000-000000000005', pg_temp.h('cas' || i), 'text/plain', 'k', 10, '15000000-0000-4000-8000-0000000000ba'
  FROM generate_series(1, 5) i;
DELETE FROM public.quota_test_batches;
SELECT is(pg_temp.usage('15000000-0000-4000-8000-000000000005'), '0/0', 'sources deleted by ON DELETE CASCADE decrement');

-- multi-user statements count each user
INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
SELECT u::uuid, pg_temp.h('multi' || i), 'text/plain', 'k', i
  FROM generate_series(1, 6) i,
       LATERAL (SELECT CASE WHEN i % 2 = 0 THEN '16000000-0000-4000-8000-000000000006' ELSE '17000000-0000-4000-8000-000000000007' END) x(u);
SELECT is(pg_temp.usage('16000000-0000-4000-8000-000000000006') || ' ' || pg_temp.usage('17000000-0000-4000-8000-000000000007'),
  '12/3 9/3', 'one statement for two users counts each');

-- never negative; a counter drifted low never blocks a delete
UPDATE public.storage_usage SET total_bytes = 5, total_sources = 1 WHERE user_id = '16000000-0000-4000-8000-000000000006';
SELECT lives_ok($$DELETE FROM public.sources WHERE user_id = '16000000-0000-4000-8000-000000000006'$$,
  'a delete works although the counter drifted low');
SELECT is(pg_temp.usage('16000000-0000-4000-8000-000000000006'), '0/0', 'the counter is clamped at zero, never negative');

-- per-file limit
SELECT throws_ok($$SELECT pg_temp.add('18000000-0000-4000-8000-000000000008', 'big', 104857601)$$, 'PT413',
  'File too large: 100 MiB + 1 byte exceeds the per-file limit of 100 MiB on plan free', 'a file over max_file_bytes is refused with PT413');
SELECT lives_ok($$SELECT pg_temp.add('18000000-0000-4000-8000-000000000008', 'max', 104857600)$$, 'a file of exactly max_file_bytes is accepted');

-- pro user 50 MiB below 100 GiB: counters past 2^31 work
SELECT public.set_user_plan('19000000-0000-4000-8000-000000000009', 'pro');
UPDATE public.storage_usage SET total_bytes = 107374182400 - 52428800 WHERE user_id = '19000000-0000-4000-8000-000000000009';
SELECT throws_ok($$SELECT pg_temp.add('19000000-0000-4000-8000-000000000009', 'p60', 62914560)$$, 'PT402',
  'Storage quota exceeded: 100 GiB of 100 GiB used on plan pro; this upload needs 60.0 MiB', 'pro user 50 MiB below 100 GiB cannot add 60 MiB');
SELECT lives_ok($$SELECT pg_temp.add('19000000-0000-4000-8000-000000000009', 'p50', 52428800)$$, 'the same user can add exactly 50 MiB');
SELECT is((SELECT total_bytes FROM public.storage_usage WHERE user_id = '19000000-0000-4000-8000-000000000009'), 107374182400::bigint,
  'counter holds 100 GiB exactly (> 2^31, no overflow)');

-- upgrade applies to the very next insert; downgrade below usage blocks writes, not reads or deletes
UPDATE public.storage_usage SET total_bytes = 1073741824 - 1048576 WHERE user_id = '18000000-0000-4000-8000-000000000008';
SELECT throws_ok($$SELECT pg_temp.add('18000000-0000-4000-8000-000000000008', 'up', 10485760)$$, 'PT402', NULL,
  'free user 1 MiB below the limit cannot add 10 MiB');
SELECT lives_ok($$SELECT public.set_user_plan('18000000-0000-4000-8000-000000000008', 'pro')$$, 'upgrade to pro');
SELECT lives_ok($$SELECT pg_temp.add('18000000-0000-4000-8000-000000000008', 'up', 10485760)$$, 'the next insert after the upgrade is accepted');
SELECT lives_ok($$SELECT public.set_user_plan('18000000-0000-4000-8000-000000000008', 'free')$$, 'a downgrade below current usage succeeds');
SELECT throws_ok($$SELECT pg_temp.add('18000000-0000-4000-8000-000000000008', 'tiny', 1)$$, 'PT402', NULL,
  'after the downgrade an insert is refused');
SELECT results_eq($$SELECT state, percent_used > 100, used_human, limit_human FROM public.storage_usage_report
                    WHERE user_id = '18000000-0000-4000-8000-000000000008'$$,
  $$VALUES ('over'::text, true, '1.01 GiB'::text, '1.00 GiB'::text)$$, 'the report shows state over and more than 100 %');
SELECT is((SELECT count(*)::integer FROM public.sources WHERE user_id = '18000000-0000-4000-8000-000000000008'), 2,
  'selects still work after the downgrade');
SELECT lives_ok($$DELETE FROM public.sources WHERE user_id = '18000000-0000-4000-8000-000000000008' AND file_size = 10485760$$,
  'deletes still work after the downgrade');

-- report states
SELECT pg_temp.limit_to('1a000000-0000-4000-8000-00000000000a', 1000);
SELECT pg_temp.add('1a000000-0000-4000-8000-00000000000a', 'w', 800);
SELECT is((SELECT state || ' ' || percent_used FROM public.storage_usage_report WHERE user_id = '1a000000-0000-4000-8000-00000000000a'),
  'warning 80.0', 'state warning from 80 %');
SELECT pg_temp.add('1a000000-0000-4000-8000-00000000000a', 'f', 200);
SELECT is((SELECT state FROM public.storage_usage_report WHERE user_id = '1a000000-0000-4000-8000-00000000000a'), 'full',
  'state full at exactly 100 %');

-- error contract: DETAIL is JSON with code and figures, HINT is actionable
DO $$
DECLARE v_detail text; v_hint text; v_state text;
BEGIN
  PERFORM pg_temp.add('11000000-0000-4000-8000-000000000001', 'z', 12582912);
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL, v_hint = PG_EXCEPTION_HINT, v_state = RETURNED_SQLSTATE;
  PERFORM set_config('quota_test.detail', v_detail, true), set_config('quota_test.hint', v_hint, true),
          set_config('quota_test.state', v_state, true);
END $$;
SELECT is(current_setting('quota_test.state'), 'PT402', 'storage refusal has SQLSTATE PT402');
SELECT is(current_setting('quota_test.detail')::jsonb,
  '{"code":"STORAGE_QUOTA_EXCEEDED","plan":"free","user_id":"11000000-0000-4000-8000-000000000001","used_bytes":1000,"limit_bytes":1000,"requested_bytes":12582912}'::jsonb,
  'DETAIL is the JSON object of the contract');
SELECT matches(current_setting('quota_test.hint'), '^Delete sources .* upgrade', 'HINT says to delete sources or upgrade');

-- rejection counter: +1 per refused statement, although each was rolled back
SELECT set_config('quota_test.before', pg_temp.rejections('storage')::text, true);
SELECT throws_ok($$SELECT pg_temp.add('11000000-0000-4000-8000-000000000001', 'r1', 5)$$, 'PT402', NULL, 'refusal 1');
SELECT throws_ok($$INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
  SELECT '11000000-0000-4000-8000-000000000001', pg_temp.h('r2' || i), 'text/plain', 'k', 5 FROM generate_series(1, 10) i$$,
  'PT402', NULL, 'refusal 2 (a 10-row statement)');
SELECT is(pg_temp.rejections('storage') - current_setting('quota_test.before')::bigint, 2::bigint,
  'the storage rejection counter rose by exactly 2 (one per refused statement) despite the rollbacks');

-- enforcement applies to service_role too (a trigger, not a policy); the owner was refused above
SET LOCAL ROLE service_role;
DO $$ BEGIN
  INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
  VALUES ('11000000-0000-4000-8000-000000000001', md5('sr') || md5('sr.'), 'text/plain', 'k', 1);
  PERFORM set_config('quota_test.sr', 'allowed', true);
EXCEPTION WHEN OTHERS THEN PERFORM set_config('quota_test.sr', SQLSTATE, true); END $$;
RESET ROLE;
SELECT is(current_setting('quota_test.sr'), 'PT402', 'service_role is refused too');

-- check_storage_quota: the insert's answer before any bytes are uploaded, with nothing written
SELECT pg_temp.limit_to('1c000000-0000-4000-8000-00000000000c', 1000);
SELECT pg_temp.add('1c000000-0000-4000-8000-00000000000c', 'c1', 600);
SELECT lives_ok($$SELECT public.check_storage_quota('1c000000-0000-4000-8000-00000000000c', 400)$$,
  'check_storage_quota: a file that reaches the limit exactly is accepted');
SELECT is(pg_temp.usage('1c000000-0000-4000-8000-00000000000c'), '600/1', 'check_storage_quota: an accepted check charges nothing');
SELECT set_config('quota_test.before_check', pg_temp.rejections('storage')::text, true);
SELECT throws_ok($$SELECT public.check_storage_quota('1c000000-0000-4000-8000-00000000000c', 401)$$, 'PT402',
  'Storage quota exceeded: 600 B of 1000 B used on plan free; this upload needs 401 B',
  'check_storage_quota: one byte too many gives the PT402 of the insert');
SELECT throws_ok($$SELECT pg_temp.add('1c000000-0000-4000-8000-00000000000c', 'c2', 401)$$, 'PT402',
  'Storage quota exceeded: 600 B of 1000 B used on plan free; this upload needs 401 B',
  '... and the insert itself gives the same error');
SELECT is(pg_temp.rejections('storage') - current_setting('quota_test.before_check')::bigint, 2::bigint,
  'check_storage_quota: its refusal is counted as a storage rejection, like the insert''s');
SELECT throws_ok($$SELECT public.check_storage_quota('1c000000-0000-4000-8000-00000000000c', 104857601)$$, 'PT413',
  'File too large: 100 MiB + 1 byte exceeds the per-file limit of 100 MiB on plan free',
  'check_storage_quota: a file over the per-file limit gives the PT413 of the insert');
SELECT lives_ok($$SELECT public.check_storage_quota('1d000000-0000-4000-8000-00000000000d', 1048576)$$,
  'check_storage_quota: a user without a usage row is checked against the default plan (1 MiB accepted)');
SELECT throws_ok($$SELECT public.check_storage_quota('1d000000-0000-4000-8000-00000000000d', 2147483648)$$, 'PT413', NULL,
  '... and a 2 GiB file refused');
SELECT is((SELECT count(*)::integer FROM public.storage_usage WHERE user_id = '1d000000-0000-4000-8000-00000000000d'), 0,
  'check_storage_quota: no usage row is left behind for a new user');
SELECT throws_ok($$SELECT public.check_storage_quota(NULL, 1)$$, '22023', 'p_user_id must not be NULL',
  'check_storage_quota: NULL user -> 22023');
SELECT throws_ok($$SELECT public.check_storage_quota('1c000000-0000-4000-8000-00000000000c', -1)$$, '22023',
  'p_bytes must be the size of the file in bytes (0 or more), got -1', 'check_storage_quota: negative size -> 22023');

-- bad input: standard SQLSTATEs, nothing written
SELECT throws_ok($$SELECT pg_temp.add('1b000000-0000-4000-8000-00000000000b', 'neg', -1)$$, '23514', NULL, 'negative size -> 23514');
SELECT throws_ok($$SELECT pg_temp.add(NULL, 'nul', 1)$$, '23502', NULL, 'NULL user -> 23502');
SELECT throws_ok($$SELECT public.set_user_plan('1b000000-0000-4000-8000-00000000000b', 'gold')$$, '23503',
  'set_user_plan: unknown plan ''gold'' for p_plan_id', 'unknown plan -> 23503 naming the field');

SELECT * FROM finish();
ROLLBACK;
