-- public.cleanup_stale_interpretations() → integer
-- Guarantees (design §4.4, §4.5):
--  * every pending/running run whose timeout_at has passed becomes failed, with error_message
--    'Timeout - no heartbeat' and completed_at = now(); the return value is how many runs this call failed;
--  * for each of them the user's interpretation-quota unit is given back, with the rules of
--    public.refund_interpretation_quota(user_id, created_at): only when the run was counted in the user's
--    current billing period (an ended period is rolled first), never taking the count below zero. The refund
--    is set-based: one call of neotoma_ops.quota_refund_interpretations() per batch, one counter UPDATE per
--    user for all of that user's runs in the batch;
--  * neotoma_ops.interpretation_counters (timeouts_total, timeouts_pending_total, timeouts_running_total,
--    quota_refunds_total) grow by what this call did, in the same transaction (for ops_metrics());
--  * overlapping calls do nothing: the first takes pg_try_advisory_xact_lock(7243530300), any other returns 0
--    at once (pg_cron queues a run that overlaps the previous one);
--  * bounded: at most sweep_batch_size runs per batch and sweep_max_batches batches per call
--    (neotoma_ops.interpretation_settings); what remains is done by the next call;
--  * a run finishing concurrently is never overwritten: rows are locked FOR UPDATE SKIP LOCKED (a row another
--    session is completing is skipped, not waited for) and the UPDATE re-checks status and timeout_at under
--    the lock, so a run completed or heartbeated just before is left alone;
--  * cost follows the number of stale runs: the scan walks the partial index
--    interpretation_runs_active_timeout_at_idx (active runs only) in deadline order and stops at now().
-- Safe to run twice: the second call finds nothing stale and changes nothing.
CREATE OR REPLACE FUNCTION public.cleanup_stale_interpretations()
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $$
DECLARE
  v_batch_size   integer;
  v_max_batches  integer;
  v_batches      integer := 0;
  v_in_batch     integer;
  v_failed       integer := 0;
  v_from_pending integer := 0;
  v_from_running integer := 0;
  v_refunds      integer := 0;
  v_pending      integer;
  v_users        uuid[];
  v_counted_at   timestamptz[];
BEGIN
  -- 7243530300: this function's advisory lock key (documented in docs/interpretations.md)
  IF NOT pg_catalog.pg_try_advisory_xact_lock(7243530300) THEN
    RETURN 0;
  END IF;

  SELECT s.sweep_batch_size, s.sweep_max_batches
    INTO v_batch_size, v_max_batches
    FROM neotoma_ops.interpretation_settings AS s
   WHERE s.singleton;
  v_batch_size  := coalesce(v_batch_size, 500);
  v_max_batches := coalesce(v_max_batches, 20);

  LOOP
    v_batches  := v_batches + 1;
    v_in_batch := 0;

    WITH stale AS (
      SELECT r.id, r.status AS previous_status
        FROM public.interpretation_runs AS r
       WHERE r.status IN ('pending', 'running')
         AND r.timeout_at < pg_catalog.now()
       ORDER BY r.timeout_at
       LIMIT v_batch_size
         FOR UPDATE OF r SKIP LOCKED
    ), failed AS (
      UPDATE public.interpretation_runs AS t
         SET status        = 'failed',
             error_message = 'Timeout - no heartbeat',
             completed_at  = pg_catalog.now()
        FROM stale
       WHERE t.id = stale.id
         AND t.status IN ('pending', 'running')
         AND t.timeout_at < pg_catalog.now()
      RETURNING t.user_id, t.created_at, stale.previous_status
    )
    -- a run without created_at (Neotoma's column is nullable) was never counted in a period: nothing to refund
    SELECT count(*)::integer, (count(*) FILTER (WHERE f.previous_status = 'pending'))::integer,
           array_agg(f.user_id) FILTER (WHERE f.created_at IS NOT NULL),
           array_agg(f.created_at) FILTER (WHERE f.created_at IS NOT NULL)
      INTO v_in_batch, v_pending, v_users, v_counted_at
      FROM failed AS f;

    v_from_pending := v_from_pending + v_pending;
    v_from_running := v_from_running + (v_in_batch - v_pending);
    IF v_users IS NOT NULL THEN
      -- one set-based refund for the whole batch (same rules as public.refund_interpretation_quota())
      v_refunds := v_refunds + neotoma_ops.quota_refund_interpretations(v_users, v_counted_at);
    END IF;

    v_failed := v_failed + v_in_batch;
    EXIT WHEN v_in_batch < v_batch_size OR v_batches >= v_max_batches;
  END LOOP;

  IF v_failed > 0 THEN
    UPDATE neotoma_ops.interpretation_counters AS c
       SET value = c.value + CASE c.counter
                               WHEN 'timeouts_total'         THEN v_failed
                               WHEN 'timeouts_pending_total' THEN v_from_pending
                               WHEN 'timeouts_running_total' THEN v_from_running
                               WHEN 'quota_refunds_total'    THEN v_refunds
                             END,
           updated_at = pg_catalog.now()
     WHERE c.counter IN ('timeouts_total', 'timeouts_pending_total', 'timeouts_running_total',
                         'quota_refunds_total');
  END IF;

  RETURN v_failed;
END
$$;

COMMENT ON FUNCTION public.cleanup_stale_interpretations() IS
  'pg_cron stale-interpretation-cleanup: fails pending/running runs past timeout_at (''Timeout - no heartbeat''), '
  'refunds their quota unit within the period, counts them; guarded, bounded, never overwrites a finished run.';

REVOKE ALL ON FUNCTION public.cleanup_stale_interpretations() FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.cleanup_stale_interpretations() TO service_role;
