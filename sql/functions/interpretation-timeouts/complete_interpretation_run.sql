-- requires: 0006_interpretation-timeouts
-- public.complete_interpretation_run(p_run_id, p_observations_created, p_unknown_fields_count) → boolean: the
-- worker records that its run finished.
-- Guarantees: one UPDATE guarded by status = pending/running, so a run that is already finished (completed, or
-- failed by cleanup_stale_interpretations() while the worker was silent) is never overwritten.
-- Returns false on a finished run (nothing changed) and true when it finished it.
-- Bad input (NULL id, negative counts) → 22023, nothing written.
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

COMMENT ON FUNCTION public.complete_interpretation_run(uuid, integer, integer) IS
  'Completes an active run with its counts; false (nothing changed) when the run was already finished.';

REVOKE ALL ON FUNCTION public.complete_interpretation_run(uuid, integer, integer) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.complete_interpretation_run(uuid, integer, integer) TO service_role;
