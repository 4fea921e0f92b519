-- Set-based quota paths: the sweep refunds a whole batch in one UPDATE per user (several runs of one user in
-- one sweep, capped at zero, only runs of the current period); neotoma_ops.quota_refund_interpretations()
-- input checks; reset_billing_periods() across sub-batches (p_batch_size honoured exactly, idempotent); and
-- the set-based roll writing exactly one usage_periods row per closed period for every anchor day.
BEGIN;
SELECT plan(17);

CREATE FUNCTION pg_temp.add_source(p_user uuid, p_hash_char text) RETURNS uuid LANGUAGE sql AS $$
  INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
  VALUES (p_user, repeat(p_hash_char, 64), 'text/plain', p_user::text || '/' || repeat(p_hash_char, 64), 10)
  RETURNING id
$$;
CREATE FUNCTION pg_temp.add_runs(p_user uuid, p_n integer) RETURNS void LANGUAGE sql AS $$
  INSERT INTO public.interpretation_runs (user_id, source_id, interpretation_config, status)
  SELECT p_user, s.id, '{}', 'pending' FROM public.sources s, generate_series(1, p_n)
   WHERE s.user_id = p_user
$$;
CREATE FUNCTION pg_temp.used(p_user uuid) RETURNS integer LANGUAGE sql AS $$
  SELECT interpretation_count_month FROM public.storage_usage WHERE user_id = p_user
$$;
CREATE FUNCTION pg_temp.refunds() RETURNS bigint LANGUAGE sql AS $$
  SELECT value FROM neotoma_ops.interpretation_counters WHERE counter = 'quota_refunds_total'
$$;
-- nothing else stale in this transaction's view
UPDATE public.interpretation_runs SET timeout_at = now() + interval '10 minutes'
 WHERE status IN ('pending', 'running') AND timeout_at < now();

-- ── several runs of the same user in one sweep ───────────────────────────────────────────────────────
SELECT pg_temp.add_source('14000000-0000-4000-8000-0000000000a1', 'a');
SELECT pg_temp.add_source('14000000-0000-4000-8000-0000000000b1', 'b');
SELECT pg_temp.add_source('14000000-0000-4000-8000-0000000000c1', 'c');
SELECT pg_temp.add_runs('14000000-0000-4000-8000-0000000000a1', 5);  -- a: 5 counted, 3 will time out
SELECT pg_temp.add_runs('14000000-0000-4000-8000-0000000000b1', 4);  -- b: 4 times out, but the count drifted to 1
SELECT pg_temp.add_runs('14000000-0000-4000-8000-0000000000c1', 3);  -- c: 3 time out, 1 of them from a closed period
UPDATE public.storage_usage SET interpretation_count_month = 1 WHERE user_id = '14000000-0000-4000-8000-0000000000b1';
UPDATE public.interpretation_runs r SET timeout_at = now() - interval '1 minute'
 WHERE r.id IN (SELECT id FROM public.interpretation_runs WHERE user_id = '14000000-0000-4000-8000-0000000000a1' LIMIT 3)
    OR r.user_id IN ('14000000-0000-4000-8000-0000000000b1', '14000000-0000-4000-8000-0000000000c1');
-- one run charged before the current period (history rewritten as the sweep may: accounting mode 'internal')
SET LOCAL neotoma_ops.run_accounting = 'internal';
UPDATE public.interpretation_runs r SET created_at = su.billing_period_start - interval '1 day',
                                        quota_charged_at = su.billing_period_start - interval '1 day'
  FROM public.storage_usage su
 WHERE su.user_id = r.user_id
   AND r.id = (SELECT id FROM public.interpretation_runs WHERE user_id = '14000000-0000-4000-8000-0000000000c1' LIMIT 1);
RESET neotoma_ops.run_accounting;
CREATE TEMP TABLE r0 ON COMMIT DROP AS SELECT pg_temp.refunds() AS v;

SELECT is(public.cleanup_stale_interpretations(), 10, 'the sweep fails the 10 stale runs of three users');
SELECT is(pg_temp.used('14000000-0000-4000-8000-0000000000a1'), 2, 'three runs of one user in one sweep refund three units (5 -> 2)');
SELECT is(pg_temp.used('14000000-0000-4000-8000-0000000000b1'), 0, 'four runs against a count of 1: refunded down to 0, never below');
SELECT is(pg_temp.used('14000000-0000-4000-8000-0000000000c1'), 1, 'a run created before the current period is not refunded (3 -> 1)');
SELECT is(pg_temp.refunds() - (SELECT v FROM r0), 6::bigint, 'quota_refunds_total counts the units really given back (3 + 1 + 2)');
SELECT is(public.cleanup_stale_interpretations(), 0, 'a second sweep finds nothing');

-- ── the internal set-based refund directly ───────────────────────────────────────────────────────────
SELECT is(neotoma_ops.quota_refund_interpretations(
            ARRAY['14000000-0000-4000-8000-0000000000a1', '14000000-0000-4000-8000-0000000000a1',
                  '14000000-0000-4000-8000-0000000000a1']::uuid[],
            ARRAY[now(), now(), now()]), 2,
  'three refunds against a count of 2 give back 2');
SELECT is(pg_temp.used('14000000-0000-4000-8000-0000000000a1'), 0, 'and leave the count at 0');
SELECT throws_ok($$SELECT neotoma_ops.quota_refund_interpretations(ARRAY[gen_random_uuid()], ARRAY[now(), now()])$$,
  '22023', NULL, 'arrays of different lengths -> 22023');
SELECT is(neotoma_ops.quota_refund_interpretations('{}'::uuid[], '{}'::timestamptz[]), 0, 'an empty batch refunds nothing');

-- ── reset_billing_periods across sub-batches, and the set-based roll for every anchor day ─────────────
-- 2,500 users whose period ended: anchors 1..31 and stored periods from 1 to about 5 months back
INSERT INTO public.storage_usage (user_id, billing_anchor_day, billing_period_start, billing_period_end, billing_month,
                                  interpretation_count_month)
SELECT md5('rb' || i)::uuid, 1 + i % 31, b.period_start, b.period_end, to_char(b.period_start AT TIME ZONE 'UTC', 'YYYY-MM'), 4
  FROM generate_series(1, 2500) AS i,
       LATERAL public.billing_period_bounds(1 + i % 31, now() - interval '32 days' - (i % 120) * interval '1 day') b;
CREATE TEMP TABLE calls (n integer) ON COMMIT DROP;
INSERT INTO calls SELECT public.reset_billing_periods(1500);
SELECT ok((SELECT n BETWEEN 1000 AND 1500 FROM calls),
  'one call rolls at most p_batch_size users (1500), at least one full sub-batch (1000)');
DO $$
BEGIN
  FOR i IN 1..10 LOOP
    EXIT WHEN (SELECT n FROM calls ORDER BY ctid DESC LIMIT 1) = 0;
    INSERT INTO calls SELECT public.reset_billing_periods(1500);
  END LOOP;
END $$;
SELECT is((SELECT sum(n)::integer FROM calls), 2500, 'repeated calls drain all 2500 due users, each rolled once');
SELECT is(public.reset_billing_periods(100000), 0, 'a further call rolls nothing');
SELECT is((SELECT count(*)::integer FROM public.storage_usage su, LATERAL public.billing_period_bounds(su.billing_anchor_day, now()) b
            WHERE su.user_id IN (SELECT md5('rb' || i)::uuid FROM generate_series(1, 2500) i)
              AND (su.billing_period_start, su.billing_period_end) = (b.period_start, b.period_end)
              AND su.interpretation_count_month = 0
              AND su.billing_month = to_char(b.period_start AT TIME ZONE 'UTC', 'YYYY-MM')), 2500,
  'every user is in the period billing_period_bounds() gives for now(), count 0');
SELECT is((SELECT count(*)::integer FROM public.usage_periods up
             JOIN public.storage_usage su ON su.user_id = up.user_id,
                  LATERAL public.billing_period_bounds(su.billing_anchor_day, up.period_start) b
            WHERE up.user_id IN (SELECT md5('rb' || i)::uuid FROM generate_series(1, 2500) i)
              AND ((b.period_start, b.period_end) <> (up.period_start, up.period_end)
                   OR up.billing_month <> to_char(up.period_start AT TIME ZONE 'UTC', 'YYYY-MM'))), 0,
  'every closed period written is a real billing period of the user''s anchor');
SELECT is((SELECT count(*)::integer FROM (
             SELECT su.user_id FROM public.storage_usage su
               JOIN public.usage_periods up ON up.user_id = su.user_id
              WHERE su.user_id IN (SELECT md5('rb' || i)::uuid FROM generate_series(1, 2500) i)
              GROUP BY su.user_id, su.billing_period_start
             HAVING max(up.period_end) <> su.billing_period_start
                 OR sum(extract(epoch FROM up.period_end - up.period_start))
                    <> extract(epoch FROM su.billing_period_start - min(up.period_start))
                 OR sum(up.interpretation_count) <> 4) bad), 0,
  'closed periods tile the time up to the current period without gap or overlap; the stored count is kept once');
SELECT cmp_ok((SELECT count(*)::integer FROM public.usage_periods
                WHERE user_id IN (SELECT md5('rb' || i)::uuid FROM generate_series(1, 2500) i)), '>', 2500 + 2500,
  'catch-up over several periods wrote one row per closed period (more than two per user on average)');

SELECT * FROM finish();
ROLLBACK;
