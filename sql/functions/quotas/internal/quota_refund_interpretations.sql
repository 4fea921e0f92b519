-- requires: 0004_quotas
-- neotoma_ops.quota_refund_interpretations(p_user_ids, p_counted_at): set-based refund of interpretation
-- units; element i of the two arrays is one counted run (its user_id and created_at). Rolls the ended periods
-- of these users first, then, in ONE UPDATE of public.storage_usage grouped by user, gives back per user the
-- number of its runs whose p_counted_at lies in the user's current period [billing_period_start,
-- billing_period_end), capped at the current count. Guarantees: never below zero; a unit counted in an
-- earlier period is not refunded (that period is closed and its usage_periods row is not rewritten); the
-- counter rows are locked in user_id order before they are read, so the amounts are computed from the latest
-- committed counts (no lost update with concurrent inserts). Returns the number of units refunded.
-- Errors: arrays of different lengths or NULL elements -> 22023.
CREATE OR REPLACE FUNCTION neotoma_ops.quota_refund_interpretations(p_user_ids uuid[], p_counted_at timestamptz[])
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  v_refunded integer;
BEGIN
  IF coalesce(cardinality(p_user_ids), 0) <> coalesce(cardinality(p_counted_at), 0)
     OR array_position(p_user_ids, NULL) IS NOT NULL OR array_position(p_counted_at, NULL) IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'quota_refund_interpretations: p_user_ids and p_counted_at must be arrays of the same length without NULLs',
      HINT = 'Pass one (user_id, created_at) pair per refunded run.';
  END IF;
  IF coalesce(cardinality(p_user_ids), 0) = 0 THEN
    RETURN 0;
  END IF;

  IF cardinality(p_user_ids) = 1 THEN
    -- one run (public.refund_interpretation_quota): the same rules as one conditional UPDATE
    PERFORM neotoma_ops.quota_roll_periods(p_user_ids, now());
    UPDATE public.storage_usage su
       SET interpretation_count_month = su.interpretation_count_month - 1
     WHERE su.user_id = p_user_ids[1]
       AND su.interpretation_count_month > 0
       AND p_counted_at[1] >= su.billing_period_start
       AND p_counted_at[1] < su.billing_period_end;
    GET DIAGNOSTICS v_refunded = ROW_COUNT;
    RETURN v_refunded;
  END IF;

  PERFORM neotoma_ops.quota_roll_periods(ARRAY(SELECT DISTINCT u FROM unnest(p_user_ids) AS u), now());

  WITH runs AS (
    SELECT r.user_id, r.counted_at FROM unnest(p_user_ids, p_counted_at) AS r (user_id, counted_at)
  ), locked AS (
    SELECT su.user_id, su.interpretation_count_month AS used, su.billing_period_start AS ps,
           su.billing_period_end AS pe
      FROM public.storage_usage su
     WHERE su.user_id IN (SELECT runs.user_id FROM runs)
     ORDER BY su.user_id
       FOR UPDATE
  ), refund AS (
    SELECT l.user_id, LEAST(l.used, count(*))::integer AS n
      FROM locked l
      JOIN runs ON runs.user_id = l.user_id AND runs.counted_at >= l.ps AND runs.counted_at < l.pe
     GROUP BY l.user_id, l.used
    HAVING LEAST(l.used, count(*)) > 0
  ), upd AS (
    UPDATE public.storage_usage su
       SET interpretation_count_month = GREATEST(su.interpretation_count_month - f.n, 0)
      FROM refund f
     WHERE su.user_id = f.user_id
    RETURNING f.n
  )
  SELECT coalesce(sum(upd.n), 0)::integer INTO v_refunded FROM upd;
  RETURN v_refunded;
END
$fn$;

COMMENT ON FUNCTION neotoma_ops.quota_refund_interpretations(uuid[], timestamptz[]) IS
  'Set-based interpretation refund: per user, the runs counted in the current period, capped at the count; returns units refunded.';

REVOKE ALL ON FUNCTION neotoma_ops.quota_refund_interpretations(uuid[], timestamptz[]) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.quota_refund_interpretations(uuid[], timestamptz[]) TO service_role;
