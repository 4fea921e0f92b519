-- Base schema (Neotoma v0.2.0) and the platform shim: tables, exact column types, constraints,
-- indexes, RLS and policies; auth.uid() from JWT claims; what authenticated and anon can see.
BEGIN;
SELECT plan(50);

SELECT has_table('public', 'sources', 'sources exists');
SELECT has_table('public', 'interpretation_runs', 'interpretation_runs exists');

SELECT col_type_is('public', 'sources', 'id', 'uuid', 'sources.id is uuid');
SELECT col_type_is('public', 'sources', 'user_id', 'uuid', 'sources.user_id is uuid');
SELECT col_type_is('public', 'sources', 'content_hash', 'text', 'sources.content_hash is text');
SELECT col_type_is('public', 'sources', 'mime_type', 'text', 'sources.mime_type is text');
SELECT col_type_is('public', 'sources', 'storage_url', 'text', 'sources.storage_url is text');
SELECT col_type_is('public', 'sources', 'file_size', 'bigint', 'sources.file_size is bigint');
SELECT col_type_is('public', 'sources', 'original_filename', 'text', 'sources.original_filename is text');
SELECT col_type_is('public', 'sources', 'provenance', 'jsonb', 'sources.provenance is jsonb');
SELECT col_type_is('public', 'sources', 'created_at', 'timestamp with time zone', 'sources.created_at is timestamptz');
SELECT col_not_null('public', 'sources', 'user_id', 'sources.user_id is NOT NULL');
SELECT col_not_null('public', 'sources', 'content_hash', 'sources.content_hash is NOT NULL');
SELECT col_not_null('public', 'sources', 'file_size', 'sources.file_size is NOT NULL');
SELECT col_default_is('public', 'sources', 'provenance', '{}'::jsonb, 'sources.provenance defaults to {}');
SELECT col_is_pk('public', 'sources', 'id', 'sources.id is the primary key');
SELECT col_is_unique('public', 'sources', ARRAY['user_id', 'content_hash'], 'sources is unique on (user_id, content_hash)');
SELECT has_index('public', 'sources', 'idx_sources_user', 'sources has Neotoma''s per-user index');

SELECT col_type_is('public', 'interpretation_runs', 'id', 'uuid', 'interpretation_runs.id is uuid');
SELECT col_type_is('public', 'interpretation_runs', 'user_id', 'uuid', 'interpretation_runs.user_id is uuid');
SELECT col_type_is('public', 'interpretation_runs', 'source_id', 'uuid', 'interpretation_runs.source_id is uuid');
SELECT col_type_is('public', 'interpretation_runs', 'interpretation_config', 'jsonb', 'interpretation_config is jsonb');
SELECT col_type_is('public', 'interpretation_runs', 'status', 'text', 'status is text');
SELECT col_type_is('public', 'interpretation_runs', 'started_at', 'timestamp with time zone', 'started_at is timestamptz');
SELECT col_type_is('public', 'interpretation_runs', 'completed_at', 'timestamp with time zone', 'completed_at is timestamptz');
SELECT col_type_is('public', 'interpretation_runs', 'error_message', 'text', 'error_message is text');
SELECT col_type_is('public', 'interpretation_runs', 'observations_created', 'integer', 'observations_created is integer');
SELECT col_type_is('public', 'interpretation_runs', 'unknown_fields_count', 'integer', 'unknown_fields_count is integer');
SELECT col_type_is('public', 'interpretation_runs', 'created_at', 'timestamp with time zone', 'created_at is timestamptz');
SELECT fk_ok('public', 'interpretation_runs', 'source_id', 'public', 'sources', 'id', 'interpretation_runs.source_id references sources');
SELECT has_index('public', 'interpretation_runs', 'idx_interpretation_runs_source', 'runs are indexed by source (Neotoma''s index)');

-- constraints reject bad rows, and their messages name the field
SELECT throws_like(
  $$INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
    VALUES (gen_random_uuid(), 'ABC', 'text/plain', 'x', 1)$$,
  '%sources_content_hash_sha256_lowercase_hex%', 'a malformed content_hash is refused, naming the rule');
SELECT throws_like(
  $$INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
    VALUES (gen_random_uuid(), repeat('a', 64), 'text/plain', 'x', -1)$$,
  '%sources_file_size_not_negative%', 'a negative file_size is refused, naming the rule');
SELECT throws_ok(
  $$INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
    VALUES (NULL, repeat('a', 64), 'text/plain', 'x', 1)$$,
  '23502', NULL, 'a NULL user_id is refused with 23502');
SELECT throws_ok(
  $$INSERT INTO public.interpretation_runs (user_id, source_id, interpretation_config, status)
    VALUES (gen_random_uuid(), gen_random_uuid(), '{}', 'pending')$$,
  '23503', NULL, 'a run for an unknown source is refused with 23503');

-- RLS and policies
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'public.sources'::regclass), 'RLS is enabled on sources');
SELECT ok((SELECT relrowsecurity FROM pg_class WHERE oid = 'public.interpretation_runs'::regclass), 'RLS is enabled on interpretation_runs');
SELECT policies_are('public', 'sources',
  ARRAY['Service role full access - sources', 'Users read own sources'], 'sources has exactly the two policies');
SELECT policies_are('public', 'interpretation_runs',
  ARRAY['Service role full access - interpretation_runs', 'Users read own interpretation runs'],
  'interpretation_runs has exactly Neotoma''s two policies (no second read policy of the same meaning)');
SELECT policy_cmd_is('public', 'sources', 'Users read own sources', 'SELECT', 'users only read sources');
SELECT policy_roles_are('public', 'sources', 'Users read own sources', ARRAY['authenticated'], 'the read policy is for authenticated');
SELECT policy_roles_are('public', 'sources', 'Service role full access - sources', ARRAY['service_role'], 'the full-access policy is for service_role');
SELECT ok((SELECT rolbypassrls FROM pg_roles WHERE rolname = 'service_role'), 'service_role bypasses RLS');

-- auth.uid() reads the JWT claims the way Supabase does
SET LOCAL request.jwt.claims = '{"sub":"11111111-1111-1111-1111-111111111111","role":"authenticated"}';
SELECT is(auth.uid(), '11111111-1111-1111-1111-111111111111'::uuid, 'auth.uid() returns the sub of request.jwt.claims');
SELECT is(auth.role(), 'authenticated', 'auth.role() returns the role claim');

-- an authenticated user sees only their own sources; anon sees none
INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size) VALUES
  ('11111111-1111-1111-1111-111111111111', repeat('1', 64), 'text/plain', '11111111-1111-1111-1111-111111111111/' || repeat('1', 64), 10),
  ('22222222-2222-2222-2222-222222222222', repeat('2', 64), 'text/plain', '22222222-2222-2222-2222-222222222222/' || repeat('2', 64), 20);

SET LOCAL ROLE authenticated;
SELECT results_eq(
  $$SELECT user_id FROM public.sources$$,
  $$VALUES ('11111111-1111-1111-1111-111111111111'::uuid)$$,
  'authenticated user A sees only their own source');
SELECT throws_ok(
  $$INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
    VALUES ('11111111-1111-1111-1111-111111111111', repeat('3', 64), 'text/plain', 'x', 1)$$,
  '42501', NULL, 'authenticated cannot insert sources');
SELECT throws_ok($$UPDATE public.sources SET file_size = 0$$, '42501', NULL, 'authenticated cannot update sources');
RESET ROLE;
SET LOCAL request.jwt.claims = '';
SET LOCAL ROLE anon;
SELECT throws_ok($$SELECT count(*) FROM public.sources$$, '42501', NULL, 'anon cannot read sources at all');
RESET ROLE;

SELECT is((SELECT count(*)::int FROM public.sources WHERE user_id IN
  ('11111111-1111-1111-1111-111111111111', '22222222-2222-2222-2222-222222222222')), 2,
  'both rows are still there');

SELECT * FROM finish();
ROLLBACK;
