-- requires: 0007_operations
-- public.purge_cron_history(p_retention): deletes pg_cron run history (cron.job_run_details) that ended
-- longer ago than p_retention (default: neotoma_ops.ops_settings.cron_history_retention, 7 days), in
-- bounded batches, and returns how many rows it deleted. Runs that have not ended are never deleted.
-- Overlapping calls do not pile up: a second concurrent call returns 0 at once.
CREATE OR REPLACE FUNCTION public.purge_cron_history(p_retention interval DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
  v_retention interval;
  v_cutoff    timestamptz;
  v_batch     constant integer := 10000;
  v_deleted   bigint := 0::bigint;
  v_n         integer;
BEGIN
  IF p_retention IS NOT NULL AND p_retention < interval '1 hour' THEN
    RAISE EXCEPTION 'p_retention must be at least 1 hour, got %', p_retention
      USING ERRCODE = '22023', HINT = 'Pass NULL to use neotoma_ops.ops_settings.cron_history_retention.';
  END IF;
  IF NOT pg_catalog.pg_try_advisory_xact_lock(4747120400) THEN
    RETURN 0::bigint;
  END IF;

  SELECT coalesce(p_retention, s.cron_history_retention, interval '7 days')
    INTO v_retention
    FROM (SELECT 1) AS one
    LEFT JOIN neotoma_ops.ops_settings AS s ON s.singleton;
  v_cutoff := pg_catalog.now() - v_retention;

  -- at most 100 batches per call; the next daily run continues where this one stopped
  FOR i IN 1..100 LOOP
    DELETE FROM cron.job_run_details AS d
     WHERE d.runid IN (SELECT r.runid FROM cron.job_run_details AS r
                        WHERE r.end_time < v_cutoff
                        LIMIT v_batch);
    GET DIAGNOSTICS v_n = ROW_COUNT;
    v_deleted := v_deleted + v_n;
    EXIT WHEN v_n < v_batch;
  END LOOP;
  RETURN v_deleted;
END;
$$;

REVOKE ALL ON FUNCTION public.purge_cron_history(interval) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.purge_cron_history(interval) TO service_role;
