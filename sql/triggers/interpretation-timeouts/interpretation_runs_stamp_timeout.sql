-- requires: 0006_interpretation-timeouts
-- Trigger interpretation_runs_stamp_timeout (BEFORE INSERT OR UPDATE OF status, timeout_at ON
-- public.interpretation_runs)
-- Guarantees: the database, not the client, decides when a run is stale.
--  * A run inserted as pending/running, or moved into pending/running from another status (in particular
--    pending → running), gets timeout_at = now() + public.interpretation_run_timeout(), whatever timeout_at the
--    statement supplied.
--  * While a run is pending/running, an UPDATE may bring its deadline closer but may not clear it or push it
--    beyond now() + the run timeout (22023 naming timeout_at): a run cannot be made immortal, and only a
--    heartbeat (public.heartbeat_interpretation, which sets exactly now() + the run timeout) keeps it alive.
--  * Moves to completed/failed clear nothing (timeout_at and heartbeat_at stay readable as history) and the
--    deadline of a finished run may be changed freely.
CREATE OR REPLACE FUNCTION neotoma_ops.interpretation_runs_stamp_timeout()
RETURNS trigger
LANGUAGE plpgsql
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
  v_latest timestamptz;
BEGIN
  IF NEW.status NOT IN ('pending', 'running') THEN
    RETURN NEW;
  END IF;
  IF TG_OP = 'INSERT' OR OLD.status IS DISTINCT FROM NEW.status THEN
    NEW.timeout_at := pg_catalog.now() + public.interpretation_run_timeout();
    RETURN NEW;
  END IF;
  IF NEW.timeout_at IS DISTINCT FROM OLD.timeout_at THEN
    v_latest := pg_catalog.now() + public.interpretation_run_timeout();
    IF NEW.timeout_at IS NULL OR NEW.timeout_at > v_latest THEN
      RAISE EXCEPTION 'timeout_at of interpretation run % (%) cannot be %: a pending or running run keeps a deadline '
                      'of at most now() + the run timeout (%)',
                      NEW.id, NEW.status,
                      CASE WHEN NEW.timeout_at IS NULL THEN 'cleared' ELSE 'set to ' || NEW.timeout_at::text END,
                      public.interpretation_run_timeout()
        USING ERRCODE = '22023', COLUMN = 'timeout_at', TABLE = 'interpretation_runs',
              HINT = 'Call public.heartbeat_interpretation(run_id) while the run is alive; change '
                     'neotoma_ops.interpretation_settings.run_timeout to give every run longer.';
    END IF;
  END IF;
  RETURN NEW;
END
$$;

COMMENT ON FUNCTION neotoma_ops.interpretation_runs_stamp_timeout() IS
  'Stamps interpretation_runs.timeout_at when a run is inserted active or moves into pending/running; refuses clearing or pushing out an active run''s deadline.';

REVOKE ALL ON FUNCTION neotoma_ops.interpretation_runs_stamp_timeout() FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.interpretation_runs_stamp_timeout() TO service_role;

CREATE OR REPLACE TRIGGER interpretation_runs_stamp_timeout
  BEFORE INSERT OR UPDATE OF status, timeout_at ON public.interpretation_runs
  FOR EACH ROW
  EXECUTE FUNCTION neotoma_ops.interpretation_runs_stamp_timeout();
