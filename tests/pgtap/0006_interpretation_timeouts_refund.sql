-- A timed-out run gives its interpretation-quota unit back, within the billing period it was charged in only,
-- never below zero (cleanup_stale_interpretations(), marking the run's quota_released_at).
BEGIN;
SELECT plan(14);

CREATE FUNCTION pg_temp.add_source(p_user uuid, p_hash_char text) RETURNS uuid LANGUAGE sql AS $$
  INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
  VALUES (p_user, repeat(p_hash_char, 64), 'text/plain', p_user::text || '/' || repeat(p_hash_char, 64), 10)
  RETURNING id
$$;
CREATE FUNCTION pg_temp.add_run(p_user uuid, p_id uuid) RETURNS uuid LANGUAGE sql AS $$
  INSERT INTO public.interpretation_runs (id, user_id, source_id, interpretation_config, status)
  SELECT p_id, p_user, s.id, '{}', 'pending' FROM public.sources s WHERE s.user_id = p_user LIMIT 1
  RETURNING id
$$;
CREATE FUNCTION pg_temp.used(p_user uuid) RETURNS integer LANGUAGE sql AS $$
  SELECT interpretation_count_month FROM public.storage_usage WHERE user_id = p_user
$$;
CREATE FUNCTION pg_temp.counter(p_name text) RETURNS bigint LANGUAGE sql AS $$
  SELECT value FROM neotoma_ops.interpretation_counters WHERE counter = p_name
$$;
-- nothing else stale in this transaction's view
UPDATE public.interpretation_runs SET timeout_at = now() + interval '10 minutes'
 WHERE status IN ('pending', 'running') AND timeout_at < now();
CREATE TEMP TABLE c0 ON COMMIT DROP AS SELECT counter, value FROM neotoma_ops.interpretation_counters;
CREATE FUNCTION pg_temp.delta(p_name text) RETURNS bigint LANGUAGE sql AS $$
  SELECT pg_temp.counter(p_name) - (SELECT value FROM c0 WHERE counter = p_name)
$$;

-- ── a user at the limit whose run times out can start one more run in the same period ───────────────
SELECT pg_temp.add_source('31000000-0000-0000-0000-0000000000a1', 'a');
UPDATE public.storage_usage SET interpretation_limit_month_override = 2
 WHERE user_id = '31000000-0000-0000-0000-0000000000a1';
SELECT pg_temp.add_run('31000000-0000-0000-0000-0000000000a1', '31000000-0000-0000-0000-000000000101');
SELECT pg_temp.add_run('31000000-0000-0000-0000-0000000000a1', '31000000-0000-0000-0000-000000000102');
SELECT is(pg_temp.used('31000000-0000-0000-0000-0000000000a1'), 2, 'the user has used both interpretations of the period');
SELECT throws_ok(
  $$SELECT pg_temp.add_run('31000000-0000-0000-0000-0000000000a1', '31000000-0000-0000-0000-000000000103')$$,
  'PT402', NULL, 'at the limit, a third run is refused');

UPDATE public.interpretation_runs SET timeout_at = now() - interval '1 minute'
 WHERE id = '31000000-0000-0000-0000-000000000101';
SELECT is(public.cleanup_stale_interpretations(), 1, 'the sweep fails the stale run');
SELECT is(pg_temp.used('31000000-0000-0000-0000-0000000000a1'), 1, 'its quota unit is given back');
SELECT is(pg_temp.delta('quota_refunds_total'), 1::bigint, 'the refund is counted');
SELECT lives_ok(
  $$SELECT pg_temp.add_run('31000000-0000-0000-0000-0000000000a1', '31000000-0000-0000-0000-000000000103')$$,
  'the user can start one more run in the same period');
SELECT is(pg_temp.used('31000000-0000-0000-0000-0000000000a1'), 2, 'which counts again');
SELECT throws_ok(
  $$SELECT pg_temp.add_run('31000000-0000-0000-0000-0000000000a1', '31000000-0000-0000-0000-000000000104')$$,
  'PT402', NULL, 'and only one more');

-- ── a run from a previous period refunds nothing ─────────────────────────────────────────────────────
SELECT pg_temp.add_source('31000000-0000-0000-0000-0000000000b1', 'b');
SELECT pg_temp.add_run('31000000-0000-0000-0000-0000000000b1', '31000000-0000-0000-0000-000000000201');
-- move the user's period (and the run's creation) 40 days back: the period has ended since
UPDATE public.storage_usage
   SET billing_period_start = billing_period_start - interval '40 days',
       billing_period_end   = billing_period_start - interval '40 days' + interval '30 days'
 WHERE user_id = '31000000-0000-0000-0000-0000000000b1';
SET LOCAL neotoma_ops.run_accounting = 'internal';  -- rewrite the run's history as if 39 days had passed
UPDATE public.interpretation_runs
   SET created_at = now() - interval '39 days', quota_charged_at = now() - interval '39 days',
       timeout_at = now() - interval '39 days' + interval '10 minutes'
 WHERE id = '31000000-0000-0000-0000-000000000201';
RESET neotoma_ops.run_accounting;
DELETE FROM c0;
INSERT INTO c0 SELECT counter, value FROM neotoma_ops.interpretation_counters;

SELECT is(public.cleanup_stale_interpretations(), 1, 'the old stale run is failed');
SELECT is(pg_temp.delta('quota_refunds_total'), 0::bigint, 'a run from a previous period refunds nothing');
SELECT is(pg_temp.used('31000000-0000-0000-0000-0000000000b1'), 0, 'the current period''s count stays 0 (not -1)');
SELECT is(
  (SELECT interpretation_count FROM public.usage_periods WHERE user_id = '31000000-0000-0000-0000-0000000000b1'
    ORDER BY period_start LIMIT 1), 1,
  'the closed period keeps its count: history is not rewritten');

-- ── never below zero ─────────────────────────────────────────────────────────────────────────────────
SELECT pg_temp.add_source('31000000-0000-0000-0000-0000000000c1', 'c');
SELECT pg_temp.add_run('31000000-0000-0000-0000-0000000000c1', '31000000-0000-0000-0000-000000000301');
UPDATE public.storage_usage SET interpretation_count_month = 0 WHERE user_id = '31000000-0000-0000-0000-0000000000c1';
UPDATE public.interpretation_runs SET timeout_at = now() - interval '1 minute'
 WHERE id = '31000000-0000-0000-0000-000000000301';
SELECT is(public.cleanup_stale_interpretations(), 1, 'a stale run of a user whose count is already 0 is failed');
SELECT is(pg_temp.used('31000000-0000-0000-0000-0000000000c1'), 0, 'and the count stays at zero');

SELECT * FROM finish();
ROLLBACK;
