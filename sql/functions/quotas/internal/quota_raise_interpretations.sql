-- requires: 0004_quotas
-- neotoma_ops.quota_raise_interpretations(p_user_id, p_plan_id, p_used, p_limit, p_requested, p_resets_at):
-- raises PT402 INTERPRETATION_QUOTA_EXCEEDED (message, JSON DETAIL with resets_at, HINT).
-- Counts the rejection first (a sequence: survives the rollback of the refused statement). The error contract is
-- in docs/errors.md. Internal (EXECUTE for service_role only).
CREATE OR REPLACE FUNCTION neotoma_ops.quota_raise_interpretations(p_user_id uuid, p_plan_id text, p_used integer,
                                                                   p_limit integer, p_requested integer,
                                                                   p_resets_at timestamptz)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  v_resets text := to_char(p_resets_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"');
BEGIN
  PERFORM pg_catalog.nextval('neotoma_ops.quota_rejections_interpretations');
  RAISE EXCEPTION USING
    ERRCODE = 'PT402',
    MESSAGE = format('Interpretation quota exceeded: %s of %s interpretations used this billing period on plan %s',
                     p_used, p_limit, p_plan_id),
    DETAIL = jsonb_build_object('code', 'INTERPRETATION_QUOTA_EXCEEDED', 'plan', p_plan_id, 'user_id', p_user_id,
                                'used', p_used, 'limit', p_limit, 'requested', p_requested,
                                'resets_at', v_resets)::text,
    HINT = format('The interpretation quota resets on %s UTC; upgrade to a larger plan to interpret more now.',
                  to_char(p_resets_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'));
END
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.quota_raise_interpretations(uuid, text, integer, integer, integer, timestamptz)
  FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.quota_raise_interpretations(uuid, text, integer, integer, integer, timestamptz)
  TO service_role;
