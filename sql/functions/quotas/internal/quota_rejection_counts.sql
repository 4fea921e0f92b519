-- requires: 0004_quotas
-- neotoma_ops.quota_rejection_counts(): refused statements per resource since the counters were created
-- (storage, interpretations, file_size). For ops_metrics(). After a crash a count may jump ahead by at
-- most 32 (sequences are WAL-logged in steps), never back.
-- Internal (EXECUTE for service_role only).
CREATE OR REPLACE FUNCTION neotoma_ops.quota_rejection_counts()
RETURNS TABLE (resource text, rejections bigint)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = ''
AS $fn$
  SELECT 'storage', CASE WHEN s.is_called THEN s.last_value ELSE 0 END FROM neotoma_ops.quota_rejections_storage s
  UNION ALL
  SELECT 'interpretations', CASE WHEN s.is_called THEN s.last_value ELSE 0 END
    FROM neotoma_ops.quota_rejections_interpretations s
  UNION ALL
  SELECT 'file_size', CASE WHEN s.is_called THEN s.last_value ELSE 0 END FROM neotoma_ops.quota_rejections_file_size s
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.quota_rejection_counts() FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.quota_rejection_counts() TO service_role;
