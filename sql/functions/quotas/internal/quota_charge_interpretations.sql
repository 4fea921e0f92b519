-- requires: 0004_quotas
-- neotoma_ops.quota_charge_interpretations(p_user_id, p_count): counts p_count new interpretation runs in
-- the user's current billing period if the period's limit allows it, else raises PT402
-- INTERPRETATION_QUOTA_EXCEEDED with resets_at. Rolls an ended period first (lazy roll: a new period starts
-- at 0 without any cron run). Creates the counter row when missing.
-- Race-freedom: the increment is ONE conditional UPDATE of the user's counter row whose WHERE clause holds the
-- limit check. Under READ COMMITTED a concurrent writer waits for the row lock and re-evaluates the WHERE clause
-- on the newest row version, so check and increment are atomic and k remaining slots are granted exactly k
-- times. A missing counter row is created born true (neotoma_ops.quota_usage_rows_create: from the user's
-- existing sources and runs, INSERT ... ON CONFLICT DO NOTHING) and the UPDATE retried, so first writes never
-- raise 23505 and are checked against what the user already holds.
-- Internal: used by the triggers on sources / interpretation_runs and the public quota functions; EXECUTE for
-- service_role only.
CREATE OR REPLACE FUNCTION neotoma_ops.quota_charge_interpretations(p_user_id uuid, p_count integer)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  v_row record;
BEGIN
  -- a NULL user or count would match no row and loop into a misleading 40001
  IF p_user_id IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '23502', MESSAGE = 'quota_charge_interpretations: p_user_id must not be NULL',
      HINT = 'Pass the id of the user whose interpretations are counted.';
  END IF;
  IF p_count IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'quota_charge_interpretations: p_count must not be NULL',
      HINT = 'Pass the number of new interpretation runs to count.';
  END IF;
  FOR v_attempt IN 1..5 LOOP
    UPDATE public.storage_usage su
       SET interpretation_count_month = su.interpretation_count_month + p_count
     WHERE su.user_id = p_user_id
       AND su.billing_period_end > now()
       AND su.interpretation_count_month + p_count <= coalesce(neotoma_ops.effective_limit(su.interpretation_limit_month_override,
             (SELECT p.interpretation_limit_month FROM public.plans p WHERE p.id = su.plan_id)), 2147483647);
    IF FOUND THEN
      RETURN;
    END IF;

    SELECT su.plan_id, su.interpretation_count_month AS used, su.billing_period_end,
           neotoma_ops.effective_limit(su.interpretation_limit_month_override, p.interpretation_limit_month) AS lim
      INTO v_row
      FROM public.storage_usage su JOIN public.plans p ON p.id = su.plan_id
     WHERE su.user_id = p_user_id;
    IF NOT FOUND THEN
      -- born true: the user's runs of the period, less the new ones (already visible, added by the next UPDATE)
      PERFORM neotoma_ops.quota_usage_rows_create(ARRAY[p_user_id], 0, 0, p_count);
      CONTINUE;
    END IF;
    IF v_row.billing_period_end <= now() THEN
      PERFORM neotoma_ops.quota_roll_periods(ARRAY[p_user_id], now());
      CONTINUE;
    END IF;
    IF v_row.lim IS NOT NULL AND v_row.used + p_count > v_row.lim THEN
      PERFORM neotoma_ops.quota_raise_interpretations(p_user_id, v_row.plan_id, v_row.used, v_row.lim, p_count,
                                                      v_row.billing_period_end);
    END IF;
  END LOOP;
  RAISE EXCEPTION USING ERRCODE = '40001',
    MESSAGE = format('interpretation quota accounting for user %s did not settle after 5 attempts', p_user_id),
    HINT = 'Retry the statement.';
END
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.quota_charge_interpretations(uuid, integer) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.quota_charge_interpretations(uuid, integer) TO service_role;
