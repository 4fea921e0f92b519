-- requires: 0006_interpretation-timeouts
-- public.fail_interpretation_run(p_run_id, p_error_message) → boolean: the worker records that its run failed.
-- Guarantees: one UPDATE guarded by status = pending/running, so a run that is already finished (completed, or
-- failed by cleanup_stale_interpretations() while the worker was silent) is never overwritten.
-- Returns false on a finished run (nothing changed) and true when it failed it.
-- Bad input (NULL id, empty message) → 22023, nothing written.
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

COMMENT ON FUNCTION public.fail_interpretation_run(uuid, text) IS
  'Fails an active run with an error message; false (nothing changed) when the run was already finished.';

REVOKE ALL ON FUNCTION public.fail_interpretation_run(uuid, text) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.fail_interpretation_run(uuid, text) TO service_role;
