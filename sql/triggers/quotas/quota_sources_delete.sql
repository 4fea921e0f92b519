-- requires: 0004_quotas
-- Trigger quota_sources_delete on public.sources: usage accounting and quota enforcement (docs/quotas.md).
-- Statement-level AFTER trigger with a transition table: a bulk statement does one counter update per user (users
-- in uuid order, so concurrent multi-user statements cannot deadlock on counter rows). Enforced for every role,
-- the table owner included (a trigger, not a policy).
-- delete (also by cascade): -bytes, -sources per user, clamped at zero, never refused
CREATE OR REPLACE FUNCTION neotoma_ops.quota_sources_delete_trg()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  r record;
BEGIN
  FOR r IN
    SELECT o.user_id, sum(GREATEST(o.file_size, 0))::bigint AS bytes, count(*)::bigint AS cnt
      FROM old_rows o GROUP BY o.user_id ORDER BY o.user_id
  LOOP
    PERFORM neotoma_ops.quota_release_storage(r.user_id, r.bytes, r.cnt);
  END LOOP;
  RETURN NULL;
END
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.quota_sources_delete_trg() FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.quota_sources_delete_trg() TO service_role;

CREATE OR REPLACE TRIGGER quota_sources_delete
  AFTER DELETE ON public.sources
  REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION neotoma_ops.quota_sources_delete_trg();
