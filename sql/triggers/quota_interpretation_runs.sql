-- Interpretation quota on public.interpretation_runs (design §4.1): every inserted run counts one unit in
-- the user's current billing period (the period rolls lazily first, so a new period starts at 0 with no
-- cron run); at the limit the statement is refused whole with PT402 INTERPRETATION_QUOTA_EXCEEDED.
-- Statement-level: one counter update per user per statement, users in uuid order. Applies to every role.
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
