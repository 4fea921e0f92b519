-- requires: 0004_quotas
-- neotoma_ops.quota_check_storage_upload_limit(p_user_id, p_bucket, p_bytes): raises PT413 FILE_TOO_LARGE when a
-- file of p_bytes is over the largest object Storage accepts into p_bucket (public.storage_upload_limit()), so
-- that it is neither uploaded nor queued: it could only fail in Storage for good. Counted as a file-size
-- rejection (a sequence: survives the rollback of the refused statement). Returns when the limit is unknown.
-- Internal (EXECUTE for service_role only).
CREATE OR REPLACE FUNCTION neotoma_ops.quota_check_storage_upload_limit(p_user_id uuid, p_bucket text, p_bytes bigint)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  v_limit record;
BEGIN
  v_limit := public.storage_upload_limit(p_bucket);
  IF v_limit.limit_bytes IS NULL OR p_bytes <= v_limit.limit_bytes THEN
    RETURN;
  END IF;
  PERFORM pg_catalog.nextval('neotoma_ops.quota_rejections_file_size');
  RAISE EXCEPTION USING
    ERRCODE = 'PT413',
    MESSAGE = format('File too large for storage: %s exceeds %s, the largest object Storage accepts (%s)',
                     public.format_bytes(p_bytes), public.format_bytes(v_limit.limit_bytes), v_limit.limited_by),
    DETAIL = jsonb_build_object('code', 'FILE_TOO_LARGE', 'limit', 'storage', 'limited_by', v_limit.limited_by,
                                'user_id', p_user_id, 'bucket', p_bucket, 'file_bytes', p_bytes,
                                'max_file_bytes', v_limit.limit_bytes)::text,
    HINT = format('Upload files of at most %s, or raise %s (docs/storage.md, "A plan limit Storage cannot store").',
                  public.format_bytes(v_limit.limit_bytes), v_limit.limited_by);
END
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.quota_check_storage_upload_limit(uuid, text, bigint) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.quota_check_storage_upload_limit(uuid, text, bigint) TO service_role;
