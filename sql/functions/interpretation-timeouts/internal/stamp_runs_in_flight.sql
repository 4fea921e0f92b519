-- requires: 0006_interpretation-timeouts
-- neotoma_ops.stamp_runs_in_flight(p_limit) → integer
-- One batch of the upgrade step that gives runs already in flight a deadline (deferred step of migration
-- 0300, run by `neotoma-ops migrate up` until it returns NULL): up to p_limit runs that are pending or
-- running without a timeout_at get timeout_at = now() + the configured run timeout, as if they had just
-- started: a v0.2.0 worker never heartbeats, so a hung run is failed by the first sweep after that and a live
-- one has time to finish. Returns how many it stamped, or NULL when none was left. Each call is one short
-- transaction that locks only the rows it stamps; it reads them from the partial index of active runs
-- (their deadline-less entries), so its cost follows the runs in flight, not the table.
CREATE OR REPLACE FUNCTION neotoma_ops.stamp_runs_in_flight(p_limit integer)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  v_stamped integer;
BEGIN
  IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 100000 THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('stamp_runs_in_flight: p_limit must be between 1 and 100000, got %s', coalesce(p_limit::text, 'NULL')),
      HINT = 'Pass the number of runs per batch, e.g. 1000.';
  END IF;
  WITH batch AS (
    SELECT r.id FROM public.interpretation_runs r
     WHERE r.status IN ('pending', 'running') AND r.timeout_at IS NULL
     LIMIT p_limit
       FOR UPDATE
  )
  UPDATE public.interpretation_runs r
     SET timeout_at = pg_catalog.now() + public.interpretation_run_timeout()
    FROM batch
   WHERE r.id = batch.id AND r.status IN ('pending', 'running') AND r.timeout_at IS NULL;
  GET DIAGNOSTICS v_stamped = ROW_COUNT;
  RETURN nullif(v_stamped, 0);
END
$fn$;

COMMENT ON FUNCTION neotoma_ops.stamp_runs_in_flight(integer) IS
  'One batch of the upgrade step giving pending/running runs without a deadline one full run timeout; returns how many (NULL: done).';

REVOKE ALL ON FUNCTION neotoma_ops.stamp_runs_in_flight(integer) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.stamp_runs_in_flight(integer) TO service_role;
