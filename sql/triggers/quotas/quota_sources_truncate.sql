-- requires: 0004_quotas
-- Trigger quota_sources_truncate on public.sources: usage accounting and quota enforcement (docs/quotas.md).
-- Statement-level AFTER trigger with a transition table: a bulk statement does one counter update per user (users
-- in uuid order, so concurrent multi-user statements cannot deadlock on counter rows). Enforced for every role,
-- the table owner included (a trigger, not a policy).
-- truncate (also by TRUNCATE ... CASCADE from another table): every source is gone, so is every user's
-- storage. TRUNCATE takes the table's ACCESS EXCLUSIVE lock, so no write to sources runs alongside.
CREATE OR REPLACE FUNCTION neotoma_ops.quota_sources_truncate_trg()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
BEGIN
  UPDATE public.storage_usage su
     SET total_bytes = 0, total_sources = 0
   WHERE su.total_bytes <> 0 OR su.total_sources <> 0;
  RETURN NULL;
END
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.quota_sources_truncate_trg() FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.quota_sources_truncate_trg() TO service_role;

CREATE OR REPLACE TRIGGER quota_sources_truncate
  AFTER TRUNCATE ON public.sources
  FOR EACH STATEMENT EXECUTE FUNCTION neotoma_ops.quota_sources_truncate_trg();
