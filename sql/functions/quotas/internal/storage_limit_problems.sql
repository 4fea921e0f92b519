-- requires: 0004_quotas
-- neotoma_ops.storage_limit_problems() → (object, problem, fix)
-- Per-file limits Storage cannot honour: each plan, and each user override, whose max_file_bytes is unlimited or
-- above the largest object Storage accepts into bucket `sources` (public.storage_upload_limit(), where known). A
-- file between the two would pass the quota and then fail in Storage for good; check_storage_quota() and
-- enqueue_upload() refuse such files, but the plan promises more than can be stored. Empty when the limit is
-- unknown. Used by `neotoma-ops doctor`.
CREATE OR REPLACE FUNCTION neotoma_ops.storage_limit_problems()
RETURNS TABLE (object text, problem text, fix text)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = ''
AS $$
  WITH lim AS (SELECT l.limit_bytes, l.limited_by FROM public.storage_upload_limit('sources') AS l)
  SELECT format('plan %s', p.id),
         format('allows files of %s, but %s is %s', coalesce(public.format_bytes(p.max_file_bytes), 'any size'),
                lim.limited_by, public.format_bytes(lim.limit_bytes)),
         format('UPDATE public.plans SET max_file_bytes = %s WHERE id = %L; (or raise %s)', lim.limit_bytes, p.id, lim.limited_by)
    FROM public.plans AS p, lim
   WHERE lim.limit_bytes IS NOT NULL AND (p.max_file_bytes IS NULL OR p.max_file_bytes > lim.limit_bytes)
  UNION ALL
  SELECT format('user %s', su.user_id),
         format('has a per-file override of %s, but %s is %s', public.format_bytes(su.max_file_bytes_override),
                lim.limited_by, public.format_bytes(lim.limit_bytes)),
         format('UPDATE public.storage_usage SET max_file_bytes_override = %s WHERE user_id = %L;', lim.limit_bytes, su.user_id)
    FROM public.storage_usage AS su, lim
   WHERE lim.limit_bytes IS NOT NULL AND su.max_file_bytes_override > lim.limit_bytes
  ORDER BY 1
$$;

REVOKE ALL ON FUNCTION neotoma_ops.storage_limit_problems() FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.storage_limit_problems() TO service_role;
