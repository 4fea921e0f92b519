-- requires: 0004_quotas
-- Trigger quota_interpretation_runs_insert on public.interpretation_runs: the interpretation quota (docs/quotas.md,
-- "Interpretation units"; the rules are in sql/triggers/quotas/quota_interpretation_runs_mark.sql).
-- AFTER INSERT (statement): one unit per new run.
CREATE OR REPLACE FUNCTION neotoma_ops.quota_interpretation_runs_insert_trg()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  r record;
BEGIN
  FOR r IN
    SELECT n.user_id, count(*)::integer AS cnt FROM new_rows n GROUP BY n.user_id ORDER BY n.user_id
  LOOP
    PERFORM neotoma_ops.quota_charge_interpretations(r.user_id, r.cnt);
  END LOOP;
  RETURN NULL;
END
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.quota_interpretation_runs_insert_trg() FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.quota_interpretation_runs_insert_trg() TO service_role;

CREATE OR REPLACE TRIGGER quota_interpretation_runs_insert
  AFTER INSERT ON public.interpretation_runs
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION neotoma_ops.quota_interpretation_runs_insert_trg();
