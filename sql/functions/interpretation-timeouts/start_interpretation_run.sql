-- requires: 0006_interpretation-timeouts
-- public.start_interpretation_run(p_run_id) → timestamptz (the new timeout_at): the worker (and the TypeScript
-- helper withHeartbeat) moves its run to running.
-- Guarantees: one UPDATE guarded by status = pending/running, so a run that is already finished (completed, or
-- failed by cleanup_stale_interpretations() while the worker was silent) is never overwritten.
-- Raises like heartbeat_interpretation() on a finished run (55000) or an unknown id (P0002).
-- Bad input (NULL id) → 22023, nothing written.
CREATE OR REPLACE FUNCTION public.start_interpretation_run(p_run_id uuid)
RETURNS timestamptz
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
  v_timeout_at timestamptz;
  v_status     text;
BEGIN
  IF p_run_id IS NULL THEN
    RAISE EXCEPTION 'start_interpretation_run: p_run_id must not be NULL'
      USING ERRCODE = '22023', HINT = 'Pass the id of the interpretation run to start.';
  END IF;

  -- pending → running stamps a fresh deadline (trigger); running → running (a worker resuming the run)
  -- gets one here. started_at records when the work actually began.
  UPDATE public.interpretation_runs AS r
     SET status       = 'running',
         started_at   = CASE WHEN r.status = 'pending' THEN pg_catalog.now() ELSE r.started_at END,
         heartbeat_at = pg_catalog.now(),
         timeout_at   = pg_catalog.now() + public.interpretation_run_timeout()
   WHERE r.id = p_run_id
     AND r.status IN ('pending', 'running')
  RETURNING r.timeout_at INTO v_timeout_at;

  IF FOUND THEN
    RETURN v_timeout_at;
  END IF;

  SELECT r.status INTO v_status FROM public.interpretation_runs AS r WHERE r.id = p_run_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'start_interpretation_run: interpretation run % does not exist', p_run_id
      USING ERRCODE = 'P0002', HINT = 'Check p_run_id: no row of public.interpretation_runs has this id.';
  END IF;
  RAISE EXCEPTION 'start_interpretation_run: interpretation run % is %, not pending or running; nothing changed',
      p_run_id, v_status
    USING ERRCODE = '55000',
          DETAIL = pg_catalog.jsonb_build_object('run_id', p_run_id, 'status', v_status)::text,
          HINT = 'A finished run is not restarted: create a new interpretation run instead.';
END
$$;

COMMENT ON FUNCTION public.start_interpretation_run(uuid) IS
  'Moves a pending run to running (fresh timeout_at and heartbeat); raises on finished or unknown runs.';

REVOKE ALL ON FUNCTION public.start_interpretation_run(uuid) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.start_interpretation_run(uuid) TO service_role;
