-- Trigger interpretation_runs_stamp_timeout (BEFORE INSERT OR UPDATE OF status ON public.interpretation_runs)
-- Guarantees: a run inserted as pending/running, or moved into pending/running from another status (in
-- particular pending → running), gets timeout_at = now() + public.interpretation_run_timeout(), whatever
-- timeout_at the statement supplied: the database, not the client, decides when a run is stale. Moves to
-- completed/failed clear nothing (timeout_at and heartbeat_at stay readable as history), and updates that
-- keep the status (heartbeats, counts) are left alone.
CREATE OR REPLACE FUNCTION neotoma_ops.interpretation_runs_stamp_timeout()
RETURNS trigger
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = ''
AS $$
BEGIN
  IF NEW.status IN ('pending', 'running')
     AND (TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM NEW.status) THEN
    NEW.timeout_at := pg_catalog.now() + public.interpretation_run_timeout();
  END IF;
  RETURN NEW;
END
$$;

COMMENT ON FUNCTION neotoma_ops.interpretation_runs_stamp_timeout() IS
  'Stamps interpretation_runs.timeout_at when a run is inserted active or moves into pending/running.';

REVOKE ALL ON FUNCTION neotoma_ops.interpretation_runs_stamp_timeout() FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION neotoma_ops.interpretation_runs_stamp_timeout() TO service_role;

CREATE OR REPLACE TRIGGER interpretation_runs_stamp_timeout
  BEFORE INSERT OR UPDATE OF status ON public.interpretation_runs
  FOR EACH ROW
  EXECUTE FUNCTION neotoma_ops.interpretation_runs_stamp_timeout();
