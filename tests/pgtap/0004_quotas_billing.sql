-- Billing periods: billing_period_bounds (month ends, leap years, year end, session TimeZone), the
-- interpretation quota per period with lazy roll, reset_billing_periods() idempotence and catch-up,
-- refund_interpretation_quota, and the report's resets_at.
BEGIN;
SELECT plan(28);

CREATE FUNCTION pg_temp.b(a integer, t timestamptz) RETURNS text LANGUAGE sql AS $$
  SELECT to_char(period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD') || '..' || to_char(period_end AT TIME ZONE 'UTC', 'YYYY-MM-DD')
    FROM public.billing_period_bounds(a, t) $$;

SELECT is(pg_temp.b(31, '2027-01-31 00:00+00'), '2027-01-31..2027-02-28', 'anchor 31: Jan 31 -> Feb 28 (2027)');
SELECT is(pg_temp.b(31, '2027-02-28 12:00+00'), '2027-02-28..2027-03-31', 'anchor 31: Feb 28 -> Mar 31');
SELECT is(pg_temp.b(31, '2027-03-31 00:00+00'), '2027-03-31..2027-04-30', 'anchor 31: Mar 31 -> Apr 30');
SELECT is(pg_temp.b(31, '2028-02-10 00:00+00'), '2028-01-31..2028-02-29', 'anchor 31: Jan 31 -> Feb 29 (2028)');
SELECT is(pg_temp.b(30, '2027-02-15 00:00+00'), '2027-01-30..2027-02-28', 'anchor 30 in February (2027)');
SELECT is(pg_temp.b(29, '2027-03-01 00:00+00'), '2027-02-28..2027-03-29', 'anchor 29: Feb 28 -> Mar 29 (2027)');
SELECT is(pg_temp.b(29, '2028-02-29 00:00+00'), '2028-02-29..2028-03-29', 'anchor 29: Feb 29 (2028)');
SELECT is(pg_temp.b(31, '2026-12-31 08:00+00'), '2026-12-31..2027-01-31', 'anchor 31: Dec 31 -> Jan 31');
SELECT is(pg_temp.b(31, '2027-01-30 23:59:59+00'), '2026-12-31..2027-01-31', 'just before the anchor: the previous period');
SELECT is(pg_temp.b(1, '2027-06-01 00:00+00'), '2027-06-01..2027-07-01', 'anchor 1: calendar months');
SET LOCAL TimeZone = 'America/New_York';
SELECT is(pg_temp.b(28, '2027-02-28 03:00+00'), '2027-02-28..2027-03-28',
  'TimeZone America/New_York: computed in UTC (Feb 27 evening in New York is Feb 28 UTC)');
SELECT results_eq($$SELECT * FROM public.billing_period_bounds(31, '2027-01-31 00:00+00')$$,
  $$VALUES ('2027-01-31 00:00+00'::timestamptz, '2027-02-28 00:00+00'::timestamptz)$$,
  'same instants with session TimeZone America/New_York');
SET LOCAL TimeZone = 'UTC';
SELECT throws_ok($$SELECT * FROM public.billing_period_bounds(32, now())$$, '22023', NULL, 'anchor 32 -> 22023');

-- Neotoma's scenario with an interpretation limit of 2: ingest, reinterpret, third refused; next period accepted
SELECT public.set_user_plan('21000000-0000-4000-8000-000000000001', 'free');
UPDATE public.storage_usage SET interpretation_limit_month_override = 2 WHERE user_id = '21000000-0000-4000-8000-000000000001';
INSERT INTO public.sources (id, user_id, content_hash, mime_type, storage_url, file_size)
VALUES ('21000000-0000-4000-8000-0000000000a1', '21000000-0000-4000-8000-000000000001', md5('i') || md5('i.'), 'text/plain', 'k', 10);
CREATE FUNCTION pg_temp.run() RETURNS void LANGUAGE sql AS $$
  INSERT INTO public.interpretation_runs (user_id, source_id, interpretation_config, status)
  VALUES ('21000000-0000-4000-8000-000000000001', '21000000-0000-4000-8000-0000000000a1', '{}', 'pending') $$;
SELECT lives_ok('SELECT pg_temp.run()', 'ingest: first interpretation accepted');
SELECT lives_ok('SELECT pg_temp.run()', 'reinterpret: second interpretation accepted');
SELECT throws_ok('SELECT pg_temp.run()', 'PT402',
  'Interpretation quota exceeded: 2 of 2 interpretations used this billing period on plan free', 'third interpretation refused');
DO $$
DECLARE v_detail text;
BEGIN
  PERFORM pg_temp.run();
EXCEPTION WHEN SQLSTATE 'PT402' THEN
  GET STACKED DIAGNOSTICS v_detail = PG_EXCEPTION_DETAIL;
  PERFORM set_config('quota_test.detail', v_detail, true);
END $$;
SELECT is(current_setting('quota_test.detail')::jsonb - 'user_id',
  jsonb_build_object('code', 'INTERPRETATION_QUOTA_EXCEEDED', 'plan', 'free', 'used', 2, 'limit', 2, 'requested', 1,
    'resets_at', (SELECT to_char(billing_period_end AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                    FROM public.storage_usage WHERE user_id = '21000000-0000-4000-8000-000000000001')),
  'DETAIL carries code, used, limit and resets_at');
-- advance: the stored period ended a while ago (no cron run in between)
UPDATE public.storage_usage su SET (billing_period_start, billing_period_end, billing_month) =
  (SELECT b.period_start, b.period_end, to_char(b.period_start AT TIME ZONE 'UTC', 'YYYY-MM')
     FROM public.billing_period_bounds(su.billing_anchor_day, now() - interval '1 month') b)
 WHERE user_id = '21000000-0000-4000-8000-000000000001';
SELECT is((SELECT interpretations_used FROM public.storage_usage_report WHERE user_id = '21000000-0000-4000-8000-000000000001'), 0,
  'the report already shows the new period before any roll');
SELECT lives_ok('SELECT pg_temp.run()', 'next period: accepted with no cron run (lazy roll)');
SELECT is((SELECT interpretation_count_month || ' ' || (billing_period_end > now())
             FROM public.storage_usage WHERE user_id = '21000000-0000-4000-8000-000000000001'), '1 true',
  'the count restarted at 0 in the current period');
SELECT is((SELECT string_agg(interpretation_count::text, ',' ORDER BY period_start) FROM public.usage_periods
            WHERE user_id = '21000000-0000-4000-8000-000000000001'), '2', 'the closed period kept its count in usage_periods');

-- refund: only within the current period, never below zero
SELECT is(public.refund_interpretation_quota('21000000-0000-4000-8000-000000000001', now() - interval '2 months'), false,
  'a unit counted in a closed period is not refunded');
SELECT is(public.refund_interpretation_quota('21000000-0000-4000-8000-000000000001', now()), true, 'a unit of the current period is refunded');
SELECT is(public.refund_interpretation_quota('21000000-0000-4000-8000-000000000001', now()), false, 'never below zero');

-- eager roll after an outage spanning three periods; idempotent
SELECT public.set_user_plan(u, 'free')
  FROM (VALUES ('22000000-0000-4000-8000-000000000002'::uuid), ('23000000-0000-4000-8000-000000000003')) v(u);
UPDATE public.storage_usage su SET interpretation_count_month = 7,
       (billing_period_start, billing_period_end, billing_month) =
  (SELECT b.period_start, b.period_end, to_char(b.period_start AT TIME ZONE 'UTC', 'YYYY-MM')
     FROM public.billing_period_bounds(su.billing_anchor_day, now() - interval '3 months') b)
 WHERE user_id IN ('22000000-0000-4000-8000-000000000002', '23000000-0000-4000-8000-000000000003');
SELECT is(public.reset_billing_periods(1000) >= 2, true, 'reset_billing_periods rolls the users whose period ended');
SELECT results_eq($$SELECT count(*)::integer, sum(interpretation_count)::integer FROM public.usage_periods
                     WHERE user_id = '22000000-0000-4000-8000-000000000002'$$,
  $$VALUES (3, 7)$$, 'three closed periods recorded once: the stored one with its count, two skipped ones with 0');
SELECT is((SELECT string_agg(interpretation_count_month || ' ' || (billing_period_start <= now() AND billing_period_end > now()), ',')
             FROM public.storage_usage WHERE user_id IN ('22000000-0000-4000-8000-000000000002', '23000000-0000-4000-8000-000000000003')),
  '0 true,0 true', 'both users brought to the current period with the count at 0');
SELECT is(public.reset_billing_periods(1000), 0, 'a second run rolls nothing');

SELECT * FROM finish();
ROLLBACK;
