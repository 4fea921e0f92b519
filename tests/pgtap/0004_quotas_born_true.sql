-- Counter rows are born true (upgrade of a database that already holds rows): a user's first counted write
-- creates their row from everything they already hold, so it is checked against it; the upgrade's backfill
-- creates the rows of every user in batches. Rows written before the upgrade are simulated by disabling the
-- accounting triggers (as the tables' owner may, inside this transaction only).
BEGIN;
SELECT plan(21);

CREATE FUNCTION pg_temp.u(n integer) RETURNS uuid LANGUAGE sql IMMUTABLE AS $$
  SELECT ('15000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid $$;
CREATE FUNCTION pg_temp.usage(n integer) RETURNS text LANGUAGE sql AS $$
  SELECT coalesce((SELECT total_bytes || '/' || total_sources || '/' || interpretation_count_month
                     FROM public.storage_usage WHERE user_id = pg_temp.u(n)), 'none') $$;
CREATE FUNCTION pg_temp.add(n integer, k text, bytes bigint, at timestamptz DEFAULT now()) RETURNS uuid LANGUAGE sql AS $$
  INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size, created_at)
  VALUES (pg_temp.u(n), md5(n || k) || md5(k || n), 'text/plain', 'k', bytes, at) RETURNING id $$;

-- "before the upgrade": rows with no accounting
ALTER TABLE public.sources DISABLE TRIGGER quota_sources_insert;
ALTER TABLE public.interpretation_runs DISABLE TRIGGER quota_interpretation_runs_insert;
ALTER TABLE public.interpretation_runs DISABLE TRIGGER quota_interpretation_runs_mark;  -- v0.2.0 rows: no markers
SELECT pg_temp.add(1, 'a', 1073741824 - 100, now() - interval '20 days');                 -- user 1: 1 GiB - 100 B
SELECT pg_temp.add(2, 'a', 500, now() - interval '3 days');                                -- user 2: deletes first
SELECT pg_temp.add(2, 'b', 700, now() - interval '2 days');
SELECT pg_temp.add(3, 'a', 10, now() - interval '400 days');                               -- user 3: runs
INSERT INTO public.interpretation_runs (user_id, source_id, interpretation_config, status, created_at, error_message)
SELECT pg_temp.u(3), (SELECT id FROM public.sources WHERE user_id = pg_temp.u(3)), '{}', st, at, msg
  FROM (VALUES ('completed', now() - interval '1 hour', NULL),
               ('running',   now() - interval '2 hours', NULL),
               ('failed',    now() - interval '3 hours', 'model error'),
               ('completed', now() - interval '70 days', NULL),                        -- an earlier period
               ('completed', NULL, NULL)) AS r (st, at, msg);                          -- no created_at
SELECT pg_temp.add(4, 'a', 4000, now() - interval '5 days');                               -- user 4: plan change
SELECT pg_temp.add(5, 'a', 1073741824 - 10, now() - interval '1 day');                     -- user 5: pre-check
SELECT pg_temp.add(n, 'a', 1000 * n) FROM generate_series(20, 29) n;                        -- users 20..29: backfill
ALTER TABLE public.sources ENABLE TRIGGER quota_sources_insert;
ALTER TABLE public.interpretation_runs ENABLE TRIGGER quota_interpretation_runs_insert;
ALTER TABLE public.interpretation_runs ENABLE TRIGGER quota_interpretation_runs_mark;

SELECT is(pg_temp.usage(1), 'none', 'no counter row yet for a user who wrote before the upgrade');

-- first insert: checked against what the user already holds
SELECT throws_ok($$SELECT pg_temp.add(1, 'b', 101)$$, 'PT402', NULL,
  'the first insert of a user already near the limit is refused: their existing bytes count');
SELECT lives_ok($$SELECT pg_temp.add(1, 'c', 100)$$, 'reaching the limit exactly is allowed');
SELECT is(pg_temp.usage(1), '1073741824/2/0', 'the row is born with the existing bytes and sources, plus the new one');
SELECT is((SELECT billing_anchor_day FROM public.storage_usage WHERE user_id = pg_temp.u(1)),
          EXTRACT(day FROM (now() - interval '20 days') AT TIME ZONE 'UTC')::integer,
          'the billing anchor is the day of the user''s first activity');

-- first write is a delete
DELETE FROM public.sources WHERE user_id = pg_temp.u(2) AND file_size = 500;
SELECT is(pg_temp.usage(2), '700/1/0', 'a delete as first write leaves the row born true (the rest of the user''s bytes)');

-- runs
SELECT is((SELECT count(*)::integer FROM public.storage_usage WHERE user_id = pg_temp.u(3)), 0, 'user 3 has no row yet');
INSERT INTO public.interpretation_runs (user_id, source_id, interpretation_config, status)
SELECT pg_temp.u(3), id, '{}', 'pending' FROM public.sources WHERE user_id = pg_temp.u(3);
SELECT is((SELECT interpretation_count_month FROM public.storage_usage WHERE user_id = pg_temp.u(3)),
  (SELECT count(*)::integer FROM public.interpretation_runs r JOIN public.storage_usage su ON su.user_id = r.user_id
    WHERE r.user_id = pg_temp.u(3) AND r.quota_released_at IS NULL
      AND coalesce(r.quota_charged_at, r.created_at) >= su.billing_period_start
      AND coalesce(r.quota_charged_at, r.created_at) < su.billing_period_end),
  'the count is born from the runs holding a unit of this period (v0.2.0 runs: created in it; not earlier periods, not undated ones), plus the new run');
SELECT is((SELECT total_bytes || '/' || total_sources FROM public.storage_usage WHERE user_id = pg_temp.u(3)), '10/1',
  'storage is born true with it');

-- the pre-check and a plan change create the row born true as well
SELECT throws_ok($$SELECT public.check_storage_quota(pg_temp.u(5), 11)$$, 'PT402', NULL,
  'check_storage_quota counts the bytes a user held before the upgrade');
SELECT is(pg_temp.usage(5), 'none', '... and leaves no counter row behind');
SELECT is((public.set_user_plan(pg_temp.u(4), 'pro')).total_bytes, 4000::bigint, 'set_user_plan creates the row born true');

-- the backfill: batches in user_id order, existing rows untouched, NULL when done
SELECT is(neotoma_ops.quota_create_missing_usage_rows(pg_temp.u(19), 4), pg_temp.u(23),
  'a batch takes the next users after the cursor and returns the last one');
SELECT is((SELECT count(*)::integer FROM public.storage_usage WHERE user_id BETWEEN pg_temp.u(20) AND pg_temp.u(29)), 4,
  'it created the rows of those four users');
SELECT is(pg_temp.usage(21), '21000/1/0', 'born true');
SELECT is(neotoma_ops.quota_create_missing_usage_rows(pg_temp.u(23), 100), pg_temp.u(29),
  'the next batch goes on from the cursor');
SELECT is(neotoma_ops.quota_create_missing_usage_rows(pg_temp.u(29), 100), NULL,
  'NULL when no user is left after the cursor');
SELECT is((SELECT count(*)::integer FROM public.storage_usage WHERE user_id BETWEEN pg_temp.u(20) AND pg_temp.u(29)), 10,
  'every user of the range has a row');
SELECT is((SELECT sum(total_bytes)::bigint FROM public.storage_usage WHERE user_id BETWEEN pg_temp.u(20) AND pg_temp.u(29)),
  (SELECT sum(file_size)::bigint FROM public.sources WHERE user_id BETWEEN pg_temp.u(20) AND pg_temp.u(29)),
  'all of them equal to their sources');
SELECT throws_ok($$SELECT neotoma_ops.quota_create_missing_usage_rows(NULL, 0)$$, '22023', NULL,
  'a batch size out of range is refused, naming p_limit');
SELECT throws_ok($$SELECT neotoma_ops.quota_usage_rows_create(ARRAY[pg_temp.u(30), pg_temp.u(31)], 5, 0, 0)$$, '22023', NULL,
  'pending amounts need exactly one user');

SELECT * FROM finish();
ROLLBACK;
