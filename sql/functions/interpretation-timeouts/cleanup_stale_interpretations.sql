-- requires: 0006_interpretation-timeouts
-- public.cleanup_stale_interpretations() → integer
-- Guarantees:
--  * every pending/running run whose timeout_at has passed becomes failed, with error_message
--    'Timeout - no heartbeat' and completed_at = now(); the return value is how many runs this call failed;
--  * a failed run that holds a unit of its user's current billing period (neotoma_ops.quota_run_holds_unit,
--    after any ended period has rolled) gives it back: the user's count drops by one and the run's
--    quota_released_at is set, so a unit is given back at most once per charge (a run charged in an earlier
--    period, or already released, gives nothing). Set-based: per batch, one roll of the users' ended periods,
--    one counter UPDATE per user;
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
  v_ids          uuid[];
  v_users        uuid[];
  v_in_batch     integer;
  v_failed       integer := 0;
  v_from_pending integer := 0;
  v_from_running integer := 0;
  v_refunds      integer := 0;
  v_pending      integer;
  v_refunded     integer;
BEGIN
  -- 7243530300: this function's advisory lock key (documented in docs/interpretation-timeouts.md)
  IF NOT pg_catalog.pg_try_advisory_xact_lock(7243530300) THEN
    RETURN 0;
  END IF;

  SELECT s.sweep_batch_size, s.sweep_max_batches
    INTO v_batch_size, v_max_batches
    FROM neotoma_ops.interpretation_settings AS s
   WHERE s.singleton;
  v_batch_size  := coalesce(v_batch_size, 500);
  v_max_batches := coalesce(v_max_batches, 20);

  -- the sweep writes quota_released_at and does its own accounting: the run triggers leave both to it
  PERFORM pg_catalog.set_config('neotoma_ops.run_accounting', 'internal', true);

  LOOP
    v_batches := v_batches + 1;

    SELECT array_agg(s.id), array_agg(DISTINCT s.user_id)
      INTO v_ids, v_users
      FROM (SELECT r.id, r.user_id
              FROM public.interpretation_runs AS r
             WHERE neotoma_ops.interpretation_run_is_stale(r.status, r.timeout_at)
             ORDER BY r.timeout_at
             LIMIT v_batch_size
               FOR UPDATE OF r SKIP LOCKED) AS s;
    EXIT WHEN v_ids IS NULL;

    -- "this period" is now's: ended periods roll first; then the counter rows are locked in user_id order,
    -- as every writer locks them
    PERFORM neotoma_ops.quota_roll_periods(v_users, pg_catalog.now());
    PERFORM 1 FROM public.storage_usage AS su WHERE su.user_id = ANY (v_users) ORDER BY su.user_id FOR UPDATE;

    WITH stale AS (
      -- holds: neotoma_ops.quota_run_holds_unit's rule, written out as one join for the batch instead of a call
      -- per run (tests/pgtap/0006_interpretation_timeouts_run_units_agree.sql checks the two agree)
      SELECT r.id, r.status AS previous_status,
             coalesce(r.quota_released_at IS NULL AND su.billing_period_end > pg_catalog.now()
                      AND coalesce(r.quota_charged_at, r.created_at) >= su.billing_period_start
                      AND coalesce(r.quota_charged_at, r.created_at) < su.billing_period_end, false) AS holds
        FROM public.interpretation_runs AS r
        LEFT JOIN public.storage_usage AS su ON su.user_id = r.user_id
       WHERE r.id = ANY (v_ids)
         AND neotoma_ops.interpretation_run_is_stale(r.status, r.timeout_at)
    ), failed AS (
      UPDATE public.interpretation_runs AS t
         SET status            = 'failed',
             error_message     = 'Timeout - no heartbeat',
             completed_at      = pg_catalog.now(),
             quota_released_at = CASE WHEN stale.holds THEN pg_catalog.now() ELSE t.quota_released_at END
        FROM stale
       WHERE t.id = stale.id
      RETURNING t.user_id, stale.previous_status, stale.holds
    ), refund AS (
      -- never below zero: what is really given back is capped by the count (cur: the row before this UPDATE)
      UPDATE public.storage_usage AS su
         SET interpretation_count_month = GREATEST(su.interpretation_count_month - g.n, 0)
        FROM (SELECT f.user_id, count(*)::integer AS n FROM failed AS f WHERE f.holds GROUP BY f.user_id) AS g
        JOIN public.storage_usage AS cur ON cur.user_id = g.user_id
       WHERE su.user_id = g.user_id
      RETURNING LEAST(cur.interpretation_count_month, g.n) AS n
    )
    SELECT (SELECT count(*)::integer FROM failed),
           (SELECT count(*)::integer FROM failed AS f WHERE f.previous_status = 'pending'),
           (SELECT coalesce(sum(n), 0)::integer FROM refund)
      INTO v_in_batch, v_pending, v_refunded;

    v_failed       := v_failed + v_in_batch;
    v_from_pending := v_from_pending + v_pending;
    v_from_running := v_from_running + (v_in_batch - v_pending);
    v_refunds      := v_refunds + v_refunded;
    EXIT WHEN cardinality(v_ids) < v_batch_size OR v_batches >= v_max_batches;
  END LOOP;

  PERFORM pg_catalog.set_config('neotoma_ops.run_accounting', '', true);

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
  'gives back the unit a run holds in its user''s current period (once per charge), counts them; guarded, bounded, '
  'never overwrites a finished run.';

REVOKE ALL ON FUNCTION public.cleanup_stale_interpretations() FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.cleanup_stale_interpretations() TO service_role;
