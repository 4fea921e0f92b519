-- requires: 0004_quotas
-- Trigger quota_interpretation_runs_account on public.interpretation_runs: the interpretation quota (docs/quotas.md,
-- "Interpretation units"; the rules are in sql/triggers/quotas/quota_interpretation_runs_mark.sql).
-- AFTER UPDATE (row) WHEN quota_charged_at changed: a unit was charged now (moved or reopened run).
CREATE OR REPLACE FUNCTION neotoma_ops.quota_interpretation_runs_account_trg()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
BEGIN
  IF pg_catalog.current_setting('neotoma_ops.run_accounting', true) = 'internal' THEN
    RETURN NULL;
  END IF;
  -- both counter rows in uuid order, as every writer locks them
  PERFORM 1 FROM public.storage_usage su WHERE su.user_id IN (OLD.user_id, NEW.user_id) ORDER BY su.user_id FOR UPDATE;
  IF neotoma_ops.quota_run_holds_unit(OLD.user_id, OLD.quota_charged_at, OLD.quota_released_at, OLD.created_at) THEN
    UPDATE public.storage_usage su
       SET interpretation_count_month = GREATEST(su.interpretation_count_month - 1, 0)
     WHERE su.user_id = OLD.user_id;
  END IF;
  PERFORM neotoma_ops.quota_charge_interpretations(NEW.user_id, 1);
  RETURN NULL;
END
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.quota_interpretation_runs_account_trg() FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.quota_interpretation_runs_account_trg() TO service_role;

CREATE OR REPLACE TRIGGER quota_interpretation_runs_account
  AFTER UPDATE ON public.interpretation_runs
  FOR EACH ROW WHEN (OLD.quota_charged_at IS DISTINCT FROM NEW.quota_charged_at)
  EXECUTE FUNCTION neotoma_ops.quota_interpretation_runs_account_trg();
