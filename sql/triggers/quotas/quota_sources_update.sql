-- requires: 0004_quotas
-- Trigger quota_sources_update on public.sources: usage accounting and quota enforcement (docs/quotas.md).
-- Statement-level AFTER trigger with a transition table: a bulk statement does one counter update per user (users
-- in uuid order, so concurrent multi-user statements cannot deadlock on counter rows). Enforced for every role,
-- the table owner included (a trigger, not a policy).
-- update: moves the difference (file_size changed, or source moved to another user). A user whose bytes or
-- source count grow is checked like an insert (files that changed are checked against max_file_bytes);
-- a user whose usage shrinks is decremented, never refused.
CREATE OR REPLACE FUNCTION neotoma_ops.quota_sources_update_trg()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  r record;
BEGIN
  FOR r IN
    WITH changed_new AS (
      SELECT n.user_id, n.file_size FROM new_rows n
       WHERE NOT EXISTS (SELECT 1 FROM old_rows o
                          WHERE o.id = n.id AND o.user_id = n.user_id AND o.file_size = n.file_size)
    ), changed_old AS (
      SELECT o.user_id, o.file_size FROM old_rows o
       WHERE NOT EXISTS (SELECT 1 FROM new_rows n
                          WHERE n.id = o.id AND n.user_id = o.user_id AND n.file_size = o.file_size)
    ), d AS (
      -- a negative size (a row older than the size check) counts as 0 bytes, as everywhere in the accounting
      SELECT c.user_id, GREATEST(c.file_size, 0) AS bytes, 1 AS cnt, c.file_size AS new_file FROM changed_new c
      UNION ALL
      SELECT c.user_id, -GREATEST(c.file_size, 0), -1, NULL::bigint FROM changed_old c
    )
    SELECT d.user_id, sum(d.bytes)::bigint AS bytes, sum(d.cnt)::bigint AS cnt, max(d.new_file) AS max_file
      FROM d GROUP BY d.user_id ORDER BY d.user_id
  LOOP
    IF r.bytes > 0 OR r.cnt > 0 THEN
      PERFORM neotoma_ops.quota_charge_storage(r.user_id, r.bytes, r.cnt, r.max_file);
    ELSIF r.bytes < 0 OR r.cnt < 0 THEN
      PERFORM neotoma_ops.quota_release_storage(r.user_id, -r.bytes, -r.cnt);
    END IF;
  END LOOP;
  RETURN NULL;
END
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.quota_sources_update_trg() FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.quota_sources_update_trg() TO service_role;

CREATE OR REPLACE TRIGGER quota_sources_update
  AFTER UPDATE ON public.sources
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION neotoma_ops.quota_sources_update_trg();
