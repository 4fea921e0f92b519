-- requires: 0004_quotas
-- public.billing_period_bounds(p_anchor_day, p_at): the billing period [period_start, period_end) that
-- contains p_at for a user anchored on day p_anchor_day (1..31).
-- Guarantees: pure (IMMUTABLE); computed in UTC whatever the session TimeZone; every period starts on the
-- anchor day of its month at 00:00 UTC, clamped to the month end (anchor 31 -> Feb 28/29, Apr 30), and ends
-- where the next one starts. Each bound is derived from the anchor, never by chaining "+1 month", so
-- successive periods do not drift off month ends (Jan 31 -> Feb 28 -> Mar 31 -> Apr 30).
-- Errors: p_anchor_day outside 1..31 or NULL arguments -> 22023.
CREATE OR REPLACE FUNCTION public.billing_period_bounds(p_anchor_day integer, p_at timestamptz)
RETURNS TABLE (period_start timestamptz, period_end timestamptz)
LANGUAGE plpgsql
IMMUTABLE
PARALLEL SAFE
SECURITY INVOKER
SET search_path = ''
AS $fn$
DECLARE
  v_local  timestamp;
  v_month  date;
  v_start  date;
  v_next   date;
BEGIN
  IF p_anchor_day IS NULL OR p_anchor_day NOT BETWEEN 1 AND 31 THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('billing_period_bounds: p_anchor_day must be between 1 and 31, got %s',
                       coalesce(p_anchor_day::text, 'NULL')),
      HINT = 'Pass the day of month the billing period starts on (storage_usage.billing_anchor_day).';
  END IF;
  IF p_at IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'billing_period_bounds: p_at must not be NULL',
      HINT = 'Pass the instant whose billing period you want, e.g. now().';
  END IF;

  v_local := p_at AT TIME ZONE 'UTC';
  v_month := date_trunc('month', v_local)::date;
  -- the anchor day inside month v_month, clamped to that month's length
  v_start := v_month + (LEAST(p_anchor_day, ((v_month + interval '1 month')::date - v_month)) - 1);
  IF v_local < v_start THEN
    v_month := (v_month - interval '1 month')::date;
    v_start := v_month + (LEAST(p_anchor_day, ((v_month + interval '1 month')::date - v_month)) - 1);
  END IF;
  v_month := (v_month + interval '1 month')::date;
  v_next := v_month + (LEAST(p_anchor_day, ((v_month + interval '1 month')::date - v_month)) - 1);

  period_start := v_start::timestamp AT TIME ZONE 'UTC';
  period_end := v_next::timestamp AT TIME ZONE 'UTC';
  RETURN NEXT;
END
$fn$;

COMMENT ON FUNCTION public.billing_period_bounds(integer, timestamptz) IS
  'Billing period [period_start, period_end) containing p_at for anchor day p_anchor_day, in UTC. Pure.';

REVOKE ALL ON FUNCTION public.billing_period_bounds(integer, timestamptz) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.billing_period_bounds(integer, timestamptz) TO service_role;

-- pure and data-free; storage_usage_report (security_invoker) calls it on behalf of signed-in users
GRANT EXECUTE ON FUNCTION public.billing_period_bounds(integer, timestamptz) TO authenticated;
