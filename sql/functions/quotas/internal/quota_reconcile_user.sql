-- requires: 0004_quotas
-- neotoma_ops.quota_reconcile_user(p_user_id) → boolean: the repair of one user for reconcile_storage_usage():
-- with the counter row locked, recomputes total_bytes / total_sources from public.sources, writes them with
-- last_calculated = now() and logs a non-zero correction in usage_drift_log; true when it corrected something.
-- Internal (EXECUTE for service_role only).
CREATE OR REPLACE FUNCTION neotoma_ops.quota_reconcile_user(p_user_id uuid)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  v_old_bytes   bigint;
  v_old_sources bigint;
  v_bytes       bigint;
  v_sources     bigint;
BEGIN
  SELECT su.total_bytes, su.total_sources INTO v_old_bytes, v_old_sources
    FROM public.storage_usage su WHERE su.user_id = p_user_id FOR UPDATE;
  IF NOT FOUND THEN
    IF NOT EXISTS (SELECT 1 FROM public.sources s WHERE s.user_id = p_user_id) THEN
      RETURN false;
    END IF;
    PERFORM neotoma_ops.quota_usage_rows_create(ARRAY[p_user_id]);
    SELECT su.total_bytes, su.total_sources INTO v_old_bytes, v_old_sources
      FROM public.storage_usage su WHERE su.user_id = p_user_id FOR UPDATE;
  END IF;

  -- new statement, new snapshot: sees every transaction that committed before we got the row lock
  SELECT coalesce(sum(GREATEST(s.file_size, 0)), 0)::bigint, count(*)::bigint INTO v_bytes, v_sources
    FROM public.sources s WHERE s.user_id = p_user_id;

  UPDATE public.storage_usage su
     SET total_bytes = v_bytes, total_sources = v_sources, last_calculated = now()
   WHERE su.user_id = p_user_id;
  IF v_bytes <> v_old_bytes OR v_sources <> v_old_sources THEN
    INSERT INTO public.usage_drift_log (user_id, old_total_bytes, new_total_bytes, old_total_sources, new_total_sources)
    VALUES (p_user_id, v_old_bytes, v_bytes, v_old_sources, v_sources);
    RETURN true;
  END IF;
  RETURN false;
END
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.quota_reconcile_user(uuid) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.quota_reconcile_user(uuid) TO service_role;
