-- requires: 0004_quotas
-- public.check_storage_quota(p_user_id, p_bytes) → void
-- Answers, before any bytes are sent to storage, whether one new source of p_bytes would be accepted for
-- p_user_id now: it raises exactly the error the insert would raise (PT413 FILE_TOO_LARGE, PT402
-- STORAGE_QUOTA_EXCEEDED, same MESSAGE / DETAIL / HINT, counted as a rejection), or PT413 FILE_TOO_LARGE with
-- DETAIL limit "storage" when the file is over the largest object Storage accepts into bucket `sources`
-- (public.storage_upload_limit(), where known), and otherwise returns and changes nothing. It decides with the same accounting as the quota trigger on sources (the charge is made and
-- undone), so the two cannot disagree. Advisory only: a concurrent insert can still take the room, and the
-- trigger remains the authority. p_user_id NULL, or p_bytes NULL or negative → 22023.
CREATE OR REPLACE FUNCTION public.check_storage_quota(p_user_id uuid, p_bytes bigint)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
BEGIN
  IF p_user_id IS NULL THEN
    RAISE EXCEPTION 'p_user_id must not be NULL' USING ERRCODE = '22023',
      HINT = 'Pass the id of the user the source would belong to.';
  END IF;
  IF p_bytes IS NULL OR p_bytes < 0 THEN
    RAISE EXCEPTION 'p_bytes must be the size of the file in bytes (0 or more), got %', coalesce(p_bytes::text, 'NULL')
      USING ERRCODE = '22023', HINT = 'Pass the byte length of the content to be stored.';
  END IF;
  BEGIN
    -- a missing counter row is created first (born true: these bytes are not in sources)
    PERFORM neotoma_ops.quota_usage_rows_create(ARRAY[p_user_id]);
    PERFORM neotoma_ops.quota_charge_storage(p_user_id, p_bytes, 1, p_bytes);
    -- accepted: undo the charge (and a counter row it may have created) by leaving the block with an error
    RAISE EXCEPTION USING ERRCODE = 'PTCHK', MESSAGE = 'storage quota check passed';
  EXCEPTION WHEN SQLSTATE 'PTCHK' THEN
    NULL;  -- PT402 / PT413 are not caught: they reach the caller unchanged
  END;
  PERFORM neotoma_ops.quota_check_storage_upload_limit(p_user_id, 'sources', p_bytes);
END
$$;

REVOKE ALL ON FUNCTION public.check_storage_quota(uuid, bigint) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.check_storage_quota(uuid, bigint) TO service_role;
