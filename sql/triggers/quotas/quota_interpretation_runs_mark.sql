-- requires: 0004_quotas
-- Interpretation quota on public.interpretation_runs (docs/quotas.md, "Interpretation units"). A run holds one
-- unit of the billing period it was charged in (columns quota_charged_at / quota_released_at, written only by
-- the database; neotoma_ops.quota_run_holds_unit says whether a run holds a unit of the current period):
--  * insert: every new run is charged one unit in the user's current period (the period rolls lazily first,
--    so a new period starts at 0 with no cron run); at the limit the statement is refused whole with PT402
--    INTERPRETATION_QUOTA_EXCEEDED. Statement-level: one counter update per user, users in uuid order;
--  * reopen (completed/failed → pending/running) of a run that holds no unit: charged again, with the limit
--    check (PT402), so that its next timeout cannot give back a unit it does not hold;
--  * move (user_id changed): a run holding a unit moves it: released by the old user, charged to the new one
--    with the limit check (PT402); a run holding none takes none along;
--  * the timeout sweep gives a unit back at most once per charge (it sets quota_released_at itself, in the
--    transaction-local mode neotoma_ops.run_accounting = 'internal' that these triggers then leave alone);
--  * deleting or truncating runs gives nothing back: the interpretation was used.
-- Applies to every role, the table owner included (triggers, not policies).
--
-- BEFORE INSERT OR UPDATE OF status, user_id, quota_charged_at, quota_released_at (row): decides the markers.
CREATE OR REPLACE FUNCTION neotoma_ops.quota_interpretation_runs_mark_trg()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  v_holds boolean;
BEGIN
  IF pg_catalog.current_setting('neotoma_ops.run_accounting', true) = 'internal' THEN
    RETURN NEW;  -- the sweep (or an operator repairing history) sets the markers itself
  END IF;
  IF TG_OP = 'INSERT' THEN
    NEW.quota_charged_at := pg_catalog.now();
    NEW.quota_released_at := NULL;
    RETURN NEW;
  END IF;
  -- the markers are the database's: what the statement wrote there is replaced
  NEW.quota_charged_at := OLD.quota_charged_at;
  NEW.quota_released_at := OLD.quota_released_at;
  IF NEW.user_id IS DISTINCT FROM OLD.user_id
     OR (OLD.status IN ('completed', 'failed') AND NEW.status IN ('pending', 'running')) THEN
    PERFORM neotoma_ops.quota_usage_rows_create(ARRAY[OLD.user_id]);  -- a missing counter row is born true
    v_holds := neotoma_ops.quota_run_holds_unit(OLD.user_id, OLD.quota_charged_at, OLD.quota_released_at,
                                                OLD.created_at);
    IF NEW.user_id IS DISTINCT FROM OLD.user_id AND NOT v_holds THEN
      NEW.quota_released_at := coalesce(OLD.quota_released_at, pg_catalog.now());  -- takes no unit along
    END IF;
    IF v_holds AND NEW.user_id IS DISTINCT FROM OLD.user_id
       OR NOT v_holds AND OLD.status IN ('completed', 'failed') AND NEW.status IN ('pending', 'running') THEN
      -- a unit charged now: the moved one (to its new user) or a new one for the reopened run. Strictly later
      -- than the previous charge, even within one transaction (now() does not move), so that the accounting
      -- trigger sees the new charge.
      NEW.quota_charged_at := GREATEST(pg_catalog.now(),
                                       coalesce(OLD.quota_charged_at, OLD.created_at) + interval '1 microsecond');
      NEW.quota_released_at := NULL;
    END IF;
  END IF;
  RETURN NEW;
END
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.quota_interpretation_runs_mark_trg() FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.quota_interpretation_runs_mark_trg() TO service_role;

CREATE OR REPLACE TRIGGER quota_interpretation_runs_mark
  BEFORE INSERT OR UPDATE OF status, user_id, quota_charged_at, quota_released_at ON public.interpretation_runs
  FOR EACH ROW EXECUTE FUNCTION neotoma_ops.quota_interpretation_runs_mark_trg();
