-- requires: 0004_quotas
-- public.refund_interpretation_quota(p_user_id, p_counted_at): gives back one interpretation unit when
-- p_counted_at (the run's created_at) lies in the user's current billing period, rolling an ended period
-- first. Guarantees: never below zero; a unit counted in an earlier period is not refunded (that period
-- is closed); returns whether a unit was refunded. Used when a run times out (the sweep refunds a whole
-- batch at once through neotoma_ops.quota_refund_interpretations(), with the same rules).
-- Errors: NULL argument -> 22023.
CREATE OR REPLACE FUNCTION public.refund_interpretation_quota(p_user_id uuid, p_counted_at timestamptz)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $fn$
BEGIN
  IF p_user_id IS NULL OR p_counted_at IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('refund_interpretation_quota: %s must not be NULL',
                       CASE WHEN p_user_id IS NULL THEN 'p_user_id' ELSE 'p_counted_at' END),
      HINT = 'Pass the run''s user_id and created_at.';
  END IF;
  RETURN neotoma_ops.quota_refund_interpretations(ARRAY[p_user_id], ARRAY[p_counted_at]) > 0;
END
$fn$;

COMMENT ON FUNCTION public.refund_interpretation_quota(uuid, timestamptz) IS
  'Refunds one interpretation unit counted at p_counted_at if that is in the current period; returns whether it did.';

REVOKE ALL ON FUNCTION public.refund_interpretation_quota(uuid, timestamptz) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.refund_interpretation_quota(uuid, timestamptz) TO service_role;
