-- requires: 0004_quotas
-- neotoma_ops.quota_raise_file_too_large(p_user_id, p_plan_id, p_file_bytes, p_max_file_bytes): raises PT413
-- FILE_TOO_LARGE (message, JSON DETAIL, HINT).
-- Counts the rejection first (a sequence: survives the rollback of the refused statement). The error contract is
-- in docs/errors.md. Internal (EXECUTE for service_role only).
CREATE OR REPLACE FUNCTION neotoma_ops.quota_raise_file_too_large(p_user_id uuid, p_plan_id text,
                                                                  p_file_bytes bigint, p_max_file_bytes bigint)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  v_file text := public.format_bytes(p_file_bytes);
  v_max  text := public.format_bytes(p_max_file_bytes);
BEGIN
  PERFORM pg_catalog.nextval('neotoma_ops.quota_rejections_file_size');
  IF v_file = v_max THEN
    -- rounded alike ("100 MiB exceeds ... 100 MiB"): say by how much exactly
    v_file := format('%s + %s byte%s', v_max, p_file_bytes - p_max_file_bytes,
                     CASE WHEN p_file_bytes - p_max_file_bytes = 1 THEN '' ELSE 's' END);
  END IF;
  RAISE EXCEPTION USING
    ERRCODE = 'PT413',
    MESSAGE = format('File too large: %s exceeds the per-file limit of %s on plan %s', v_file, v_max, p_plan_id),
    DETAIL = jsonb_build_object('code', 'FILE_TOO_LARGE', 'plan', p_plan_id, 'user_id', p_user_id,
                                'file_bytes', p_file_bytes, 'max_file_bytes', p_max_file_bytes)::text,
    HINT = format('Upload files of at most %s, split the file, or upgrade to a plan with a larger per-file limit.',
                  public.format_bytes(p_max_file_bytes));
END
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.quota_raise_file_too_large(uuid, text, bigint, bigint) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.quota_raise_file_too_large(uuid, text, bigint, bigint) TO service_role;
