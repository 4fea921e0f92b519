-- requires: 0004_quotas
-- neotoma_ops.quota_run_holds_unit(p_user_id, p_charged_at, p_released_at, p_created_at) → boolean
-- Whether an interpretation run with these columns holds a unit of its user's CURRENT billing period: it has
-- not released its unit, and the unit was charged (quota_charged_at, or created_at for runs from before
-- v0.3.0) inside the user's stored period, which has not ended. A user without a counter row holds nothing.
-- The one definition of "holds" used by the triggers and the timeout sweep.
CREATE OR REPLACE FUNCTION neotoma_ops.quota_run_holds_unit(p_user_id uuid, p_charged_at timestamptz,
                                                           p_released_at timestamptz, p_created_at timestamptz)
RETURNS boolean
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = ''
AS $fn$
  SELECT p_released_at IS NULL
     AND EXISTS (SELECT 1 FROM public.storage_usage su
                  WHERE su.user_id = p_user_id
                    AND su.billing_period_end > pg_catalog.now()
                    AND coalesce(p_charged_at, p_created_at) >= su.billing_period_start
                    AND coalesce(p_charged_at, p_created_at) < su.billing_period_end)
$fn$;

COMMENT ON FUNCTION neotoma_ops.quota_run_holds_unit(uuid, timestamptz, timestamptz, timestamptz) IS
  'Whether a run holds an interpretation-quota unit of its user''s current billing period.';

REVOKE ALL ON FUNCTION neotoma_ops.quota_run_holds_unit(uuid, timestamptz, timestamptz, timestamptz) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.quota_run_holds_unit(uuid, timestamptz, timestamptz, timestamptz) TO service_role;
