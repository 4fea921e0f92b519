-- Lifecycle of one interpretation run, as driven by the worker (and the TypeScript helper withHeartbeat):
--   public.start_interpretation_run(p_run_id)                        → timestamptz (new timeout_at)
--   public.complete_interpretation_run(p_run_id, p_observations_created, p_unknown_fields_count) → boolean
--   public.fail_interpretation_run(p_run_id, p_error_message)        → boolean
-- Guarantees: each is one UPDATE guarded by status = pending/running, so a run that is already finished
-- (completed, or failed by cleanup_stale_interpretations() while the worker was silent) is never
-- overwritten. start raises like heartbeat_interpretation() on a finished run (55000) or an unknown id
-- (P0002); complete and fail return false on a finished run (nothing changed) and true when they finished it.
-- Bad input (NULL id, negative counts, empty message) → 22023, nothing written.

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

CREATE OR REPLACE FUNCTION public.complete_interpretation_run(
  p_run_id               uuid,
  p_observations_created integer DEFAULT 0,
  p_unknown_fields_count integer DEFAULT 0
)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
BEGIN
  IF p_run_id IS NULL THEN
    RAISE EXCEPTION 'complete_interpretation_run: p_run_id must not be NULL'
      USING ERRCODE = '22023', HINT = 'Pass the id of the interpretation run that finished.';
  END IF;
  IF p_observations_created IS NULL OR p_observations_created < 0 THEN
    RAISE EXCEPTION 'complete_interpretation_run: p_observations_created must be 0 or more, got %',
        coalesce(p_observations_created::text, 'NULL')
      USING ERRCODE = '22023', HINT = 'Pass the number of observations the run created.';
  END IF;
  IF p_unknown_fields_count IS NULL OR p_unknown_fields_count < 0 THEN
    RAISE EXCEPTION 'complete_interpretation_run: p_unknown_fields_count must be 0 or more, got %',
        coalesce(p_unknown_fields_count::text, 'NULL')
      USING ERRCODE = '22023', HINT = 'Pass the number of unknown fields the run met.';
  END IF;

  UPDATE public.interpretation_runs AS r
     SET status               = 'completed',
         completed_at         = pg_catalog.now(),
         observations_created = p_observations_created,
         unknown_fields_count = p_unknown_fields_count
   WHERE r.id = p_run_id
     AND r.status IN ('pending', 'running');
  IF FOUND THEN
    RETURN true;
  END IF;

  PERFORM 1 FROM public.interpretation_runs AS r WHERE r.id = p_run_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'complete_interpretation_run: interpretation run % does not exist', p_run_id
      USING ERRCODE = 'P0002', HINT = 'Check p_run_id: no row of public.interpretation_runs has this id.';
  END IF;
  RETURN false;
END
$$;

CREATE OR REPLACE FUNCTION public.fail_interpretation_run(p_run_id uuid, p_error_message text)
RETURNS boolean
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
BEGIN
  IF p_run_id IS NULL THEN
    RAISE EXCEPTION 'fail_interpretation_run: p_run_id must not be NULL'
      USING ERRCODE = '22023', HINT = 'Pass the id of the interpretation run that failed.';
  END IF;
  IF p_error_message IS NULL OR pg_catalog.btrim(p_error_message) = '' THEN
    RAISE EXCEPTION 'fail_interpretation_run: p_error_message must not be empty'
      USING ERRCODE = '22023', HINT = 'Pass the error that ended the run, for whoever reads the run later.';
  END IF;

  UPDATE public.interpretation_runs AS r
     SET status        = 'failed',
         completed_at  = pg_catalog.now(),
         error_message = pg_catalog.left(p_error_message, 4000)
   WHERE r.id = p_run_id
     AND r.status IN ('pending', 'running');
  IF FOUND THEN
    RETURN true;
  END IF;

  PERFORM 1 FROM public.interpretation_runs AS r WHERE r.id = p_run_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'fail_interpretation_run: interpretation run % does not exist', p_run_id
      USING ERRCODE = 'P0002', HINT = 'Check p_run_id: no row of public.interpretation_runs has this id.';
  END IF;
  RETURN false;
END
$$;

COMMENT ON FUNCTION public.start_interpretation_run(uuid) IS
  'Moves a pending run to running (fresh timeout_at and heartbeat); raises on finished or unknown runs.';
COMMENT ON FUNCTION public.complete_interpretation_run(uuid, integer, integer) IS
  'Completes an active run with its counts; false (nothing changed) when the run was already finished.';
COMMENT ON FUNCTION public.fail_interpretation_run(uuid, text) IS
  'Fails an active run with an error message; false (nothing changed) when the run was already finished.';

REVOKE ALL ON FUNCTION public.start_interpretation_run(uuid) FROM PUBLIC, anon, authenticated;
REVOKE ALL ON FUNCTION public.complete_interpretation_run(uuid, integer, integer) FROM PUBLIC, anon, authenticated;
REVOKE ALL ON FUNCTION public.fail_interpretation_run(uuid, text) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.start_interpretation_run(uuid) TO service_role;
GRANT EXECUTE ON FUNCTION public.complete_interpretation_run(uuid, integer, integer) TO service_role;
GRANT EXECUTE ON FUNCTION public.fail_interpretation_run(uuid, text) TO service_role;
