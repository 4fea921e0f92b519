-- requires: 0006_interpretation-timeouts
-- public.heartbeat_interpretation(p_run_id uuid) → timestamptz
-- Guarantees: for a pending or running run, sets heartbeat_at = now() and timeout_at = now() +
-- public.interpretation_run_timeout(), and returns the new timeout_at. For any other run it changes nothing
-- and raises: unknown id → P0002 (no_data_found); completed/failed → 55000 (object_not_in_prerequisite_state)
-- with a message naming the run and its status, so the worker stops (the sweep may have failed the run).
-- The update is guarded by the status in the same statement: a heartbeat racing the sweep either lands before
-- the sweep locks the row (and the run is no longer stale) or finds it failed and raises.
CREATE OR REPLACE FUNCTION public.heartbeat_interpretation(p_run_id uuid)
RETURNS timestamptz
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
  v_timeout_at timestamptz;
  v_status     text;
  v_error      text;
BEGIN
  IF p_run_id IS NULL THEN
    RAISE EXCEPTION 'heartbeat_interpretation: p_run_id must not be NULL'
      USING ERRCODE = '22023', HINT = 'Pass the id of the interpretation run being worked on.';
  END IF;

  UPDATE public.interpretation_runs AS r
     SET heartbeat_at = pg_catalog.now(),
         timeout_at   = pg_catalog.now() + public.interpretation_run_timeout()
   WHERE r.id = p_run_id
     AND r.status IN ('pending', 'running')
  RETURNING r.timeout_at INTO v_timeout_at;

  IF FOUND THEN
    RETURN v_timeout_at;
  END IF;

  SELECT r.status, r.error_message INTO v_status, v_error
    FROM public.interpretation_runs AS r
   WHERE r.id = p_run_id;

  IF NOT FOUND THEN
    RAISE EXCEPTION 'heartbeat_interpretation: interpretation run % does not exist', p_run_id
      USING ERRCODE = 'P0002', HINT = 'Check p_run_id: no row of public.interpretation_runs has this id.';
  END IF;

  RAISE EXCEPTION 'heartbeat_interpretation: interpretation run % is %, not pending or running; nothing changed',
      p_run_id, v_status
    USING ERRCODE = '55000',
          DETAIL = pg_catalog.jsonb_build_object('run_id', p_run_id, 'status', v_status,
                                                 'error_message', v_error)::text,
          HINT = 'The run is finished (a run without heartbeat for the configured timeout is failed by '
                 'cleanup_stale_interpretations()); stop working on it.';
END
$$;

COMMENT ON FUNCTION public.heartbeat_interpretation(uuid) IS
  'Records a heartbeat of an active interpretation run and pushes its timeout_at; raises on finished/unknown runs.';

REVOKE ALL ON FUNCTION public.heartbeat_interpretation(uuid) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.heartbeat_interpretation(uuid) TO service_role;
