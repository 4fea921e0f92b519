-- requires: 0004_quotas
-- neotoma_ops.quota_raise_storage(p_user_id, p_plan_id, p_used_bytes, p_limit_bytes, p_requested_bytes): raises
-- PT402 STORAGE_QUOTA_EXCEEDED (message, JSON DETAIL, HINT).
-- Counts the rejection first (a sequence: survives the rollback of the refused statement). The error contract is
-- in docs/errors.md. Internal (EXECUTE for service_role only).
CREATE OR REPLACE FUNCTION neotoma_ops.quota_raise_storage(p_user_id uuid, p_plan_id text, p_used bigint,
                                                           p_limit bigint, p_requested bigint)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $fn$
BEGIN
  PERFORM pg_catalog.nextval('neotoma_ops.quota_rejections_storage');
  RAISE EXCEPTION USING
    ERRCODE = 'PT402',
    MESSAGE = format('Storage quota exceeded: %s of %s used on plan %s; this upload needs %s',
                     public.format_bytes(p_used), public.format_bytes(p_limit), p_plan_id,
                     public.format_bytes(p_requested)),
    DETAIL = jsonb_build_object('code', 'STORAGE_QUOTA_EXCEEDED', 'plan', p_plan_id, 'user_id', p_user_id,
                                'used_bytes', p_used, 'limit_bytes', p_limit,
                                'requested_bytes', p_requested)::text,
    HINT = format('Delete sources you no longer need (free at least %s) or upgrade to a larger plan; '
                  'storage does not reset with the billing period.',
                  public.format_bytes(GREATEST(p_used + p_requested - p_limit, 0)));
END
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.quota_raise_storage(uuid, text, bigint, bigint, bigint) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.quota_raise_storage(uuid, text, bigint, bigint, bigint) TO service_role;
