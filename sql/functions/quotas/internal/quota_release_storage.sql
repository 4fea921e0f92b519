-- requires: 0004_quotas
-- neotoma_ops.quota_release_storage(p_user_id, p_bytes, p_sources): subtracts from the counters, clamped at
-- zero, never checked against a limit (deletes always work, even when the counter has drifted low). A user
-- without a counter row gets one born true (the release is already visible in sources).
-- Internal (EXECUTE for service_role only).
CREATE OR REPLACE FUNCTION neotoma_ops.quota_release_storage(p_user_id uuid, p_bytes bigint, p_sources bigint)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $fn$
BEGIN
  UPDATE public.storage_usage su
     SET total_bytes = GREATEST(su.total_bytes - p_bytes, 0),
         total_sources = GREATEST(su.total_sources - p_sources, 0)
   WHERE su.user_id = p_user_id;
  IF NOT FOUND THEN
    PERFORM neotoma_ops.quota_usage_rows_create(ARRAY[p_user_id], -p_bytes, -p_sources, 0);
    UPDATE public.storage_usage su
       SET total_bytes = GREATEST(su.total_bytes - p_bytes, 0),
           total_sources = GREATEST(su.total_sources - p_sources, 0)
     WHERE su.user_id = p_user_id;
  END IF;
END
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.quota_release_storage(uuid, bigint, bigint) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.quota_release_storage(uuid, bigint, bigint) TO service_role;
