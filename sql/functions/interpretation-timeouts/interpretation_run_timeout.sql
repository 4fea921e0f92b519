-- requires: 0006_interpretation-timeouts
-- public.interpretation_run_timeout() → interval
-- Guarantees: returns the configured time a pending/running interpretation run may go without a heartbeat
-- (neotoma_ops.interpretation_settings.run_timeout; 10 minutes unless an operator changed it). Every stamp of
-- timeout_at (insert, move to running, heartbeat) uses it, and the TypeScript heartbeat helper derives its
-- default interval (a third of it) from it. Reads only; SECURITY DEFINER so that any role allowed to write
-- interpretation runs can stamp them without access to neotoma_ops.
CREATE OR REPLACE FUNCTION public.interpretation_run_timeout()
RETURNS interval
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = ''
AS $$
  SELECT coalesce(
    (SELECT s.run_timeout FROM neotoma_ops.interpretation_settings AS s WHERE s.singleton),
    interval '10 minutes'
  )
$$;

COMMENT ON FUNCTION public.interpretation_run_timeout() IS
  'Configured interpretation run timeout (neotoma_ops.interpretation_settings.run_timeout, default 10 minutes).';

REVOKE ALL ON FUNCTION public.interpretation_run_timeout() FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.interpretation_run_timeout() TO service_role;
