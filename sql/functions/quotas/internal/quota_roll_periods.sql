-- requires: 0004_quotas
-- neotoma_ops.quota_roll_periods(p_user_ids, p_now): closes every ended billing period of the given users
-- (one usage_periods row per closed period: the stored one with its count, and, after an outage spanning
-- several periods, one row per skipped period with count 0), then moves each user to the period containing
-- p_now with interpretation_count_month = 0. Idempotent (rows already rolled are skipped; usage_periods
-- rows are written once). Locks the users' counter rows (in user_id order). Returns the number of users
-- rolled. Set-based: one statement for the whole set; the period bounds are computed inline with the same
-- arithmetic as public.billing_period_bounds() (anchor day clamped to the month length, in UTC, each bound
-- derived from its month, never by chaining "+1 month"), without a function call per user.
-- Internal (EXECUTE for service_role only).
CREATE OR REPLACE FUNCTION neotoma_ops.quota_roll_periods(p_user_ids uuid[], p_now timestamptz)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  v_local  timestamp := p_now AT TIME ZONE 'UTC';
  v_month  date := date_trunc('month', p_now AT TIME ZONE 'UTC')::date;    -- first day of p_now's month
  v_prev   date;
  v_next   date;
  v_dim    integer;   -- days in v_month
  v_dprev  integer;   -- days in v_prev
  v_dnext  integer;   -- days in v_next
  v_rolled integer;
BEGIN
  v_prev  := (v_month - interval '1 month')::date;
  v_next  := (v_month + interval '1 month')::date;
  v_dim   := v_next - v_month;
  v_dprev := v_month - v_prev;
  v_dnext := (v_next + interval '1 month')::date - v_next;

  -- cheap exit (the common case of the lazy and refund paths): nobody in the set is due
  IF NOT EXISTS (SELECT 1 FROM public.storage_usage su
                  WHERE su.user_id = ANY (p_user_ids) AND su.billing_period_end <= p_now) THEN
    RETURN 0;
  END IF;

  WITH due AS (
    SELECT su.user_id, su.plan_id, su.billing_anchor_day AS anchor, su.billing_period_start AS ps,
           su.billing_period_end AS pe, su.billing_month, su.interpretation_count_month AS used,
           su.total_bytes, su.total_sources,
           neotoma_ops.effective_limit(su.interpretation_limit_month_override, p.interpretation_limit_month) AS lim
      FROM public.storage_usage su
      JOIN public.plans p ON p.id = su.plan_id
     WHERE su.user_id = ANY (p_user_ids) AND su.billing_period_end <= p_now
     ORDER BY su.user_id
       FOR UPDATE OF su
  ), cur AS (
    -- the period containing p_now: it starts on the anchor day of p_now's month when that day has come,
    -- else on the anchor day of the previous month (days are dates in UTC)
    SELECT d.*,
           CASE WHEN v_local >= v_month + (LEAST(d.anchor, v_dim) - 1)
                THEN v_month + (LEAST(d.anchor, v_dim) - 1)
                ELSE v_prev + (LEAST(d.anchor, v_dprev) - 1) END AS cur_start_day,
           CASE WHEN v_local >= v_month + (LEAST(d.anchor, v_dim) - 1)
                THEN v_next + (LEAST(d.anchor, v_dnext) - 1)
                ELSE v_month + (LEAST(d.anchor, v_dim) - 1) END AS cur_end_day
      FROM due d
  ), gap AS (
    -- periods skipped by an outage: those starting at or after the stored end and ending by the current start
    SELECT c.user_id, g.start_day, g.end_day
      FROM cur c
     CROSS JOIN LATERAL (
       SELECT m::date + (LEAST(c.anchor, ((m + interval '1 month')::date - m::date)) - 1) AS start_day,
              (m + interval '1 month')::date
                + (LEAST(c.anchor, ((m + interval '2 months')::date - (m + interval '1 month')::date)) - 1) AS end_day
         FROM pg_catalog.generate_series(date_trunc('month', c.pe AT TIME ZONE 'UTC'),
                                         (c.cur_start_day - interval '1 month')::timestamp,
                                         interval '1 month') AS m
     ) g
     WHERE c.pe < c.cur_start_day::timestamp AT TIME ZONE 'UTC'
       AND g.start_day::timestamp AT TIME ZONE 'UTC' >= c.pe
       AND g.end_day <= c.cur_start_day
  ), closed AS (
    INSERT INTO public.usage_periods AS up (user_id, period_start, period_end, billing_month, plan_id,
                                            interpretation_count, interpretation_limit, total_bytes, total_sources)
    SELECT c.user_id, c.ps, c.pe, c.billing_month, c.plan_id, c.used, c.lim, c.total_bytes, c.total_sources
      FROM cur c
    UNION ALL
    SELECT g.user_id, g.start_day::timestamp AT TIME ZONE 'UTC', g.end_day::timestamp AT TIME ZONE 'UTC',
           to_char(g.start_day::timestamp, 'YYYY-MM'), c.plan_id, 0, c.lim, c.total_bytes, c.total_sources
      FROM gap g JOIN cur c ON c.user_id = g.user_id
    ON CONFLICT (user_id, period_start) DO NOTHING
  )
  UPDATE public.storage_usage su
     SET billing_period_start = c.cur_start_day::timestamp AT TIME ZONE 'UTC',
         billing_period_end = c.cur_end_day::timestamp AT TIME ZONE 'UTC',
         billing_month = to_char(c.cur_start_day::timestamp, 'YYYY-MM'),
         interpretation_count_month = 0
    FROM cur c
   WHERE su.user_id = c.user_id;
  GET DIAGNOSTICS v_rolled = ROW_COUNT;
  RETURN v_rolled;
END
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.quota_roll_periods(uuid[], timestamptz) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.quota_roll_periods(uuid[], timestamptz) TO service_role;
