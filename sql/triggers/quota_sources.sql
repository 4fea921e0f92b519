-- Usage accounting and quota enforcement on public.sources (design §4.1). Statement-level AFTER triggers
-- with transition tables: a bulk statement does one counter update per user (users in uuid order, so
-- concurrent multi-user statements cannot deadlock on counter rows) and is refused whole if any user would
-- go over a limit. AFTER INSERT sees only rows really inserted, so INSERT ... ON CONFLICT DO NOTHING of
-- existing content counts nothing. Enforced for every role, the table owner included (trigger, not policy).

-- insert: +bytes, +sources per user; PT402 over the storage limit, PT413 for a file over max_file_bytes.
-- Fast path for a single-row statement (the common case): one aggregate pass over the transition table
-- (no grouping, no cursor), then ONE conditional UPDATE ... FROM plans that holds the period check
-- (billing_period_end > now(), a plain comparison), the storage limit and the per-file limit. A missing
-- counter row, a refusal or an ended period falls through to neotoma_ops.quota_charge_storage(), which
-- creates the row, raises the §4.2 error or rolls the period. Multi-row statements: one counter update
-- per user, users in uuid order.
CREATE OR REPLACE FUNCTION neotoma_ops.quota_sources_insert_trg()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  r       record;
  v_rows  bigint;
  v_user  uuid;
  v_bytes bigint;
BEGIN
  SELECT count(*), (pg_catalog.array_agg(n.user_id))[1], sum(n.file_size)::bigint
    INTO v_rows, v_user, v_bytes
    FROM new_rows n;
  IF v_rows = 1 THEN
    UPDATE public.storage_usage su
       SET total_bytes = su.total_bytes + v_bytes,
           total_sources = su.total_sources + 1
      FROM public.plans p
     WHERE su.user_id = v_user
       AND p.id = su.plan_id
       AND su.billing_period_end > now()
       AND su.total_bytes + v_bytes <= coalesce(su.storage_limit_bytes_override, p.storage_limit_bytes,
                                                9223372036854775807)
       AND v_bytes <= coalesce(su.max_file_bytes_override, p.max_file_bytes, 9223372036854775807);
    IF NOT FOUND THEN
      PERFORM neotoma_ops.quota_charge_storage(v_user, v_bytes, 1, v_bytes);
    END IF;
    RETURN NULL;
  ELSIF v_rows = 0 THEN
    RETURN NULL;   -- e.g. ON CONFLICT DO NOTHING of existing content
  END IF;

  FOR r IN
    SELECT n.user_id, sum(n.file_size)::bigint AS bytes, count(*)::bigint AS cnt, max(n.file_size) AS max_file
      FROM new_rows n GROUP BY n.user_id ORDER BY n.user_id
  LOOP
    -- the same conditional UPDATE as quota_charge_storage(), without its function call
    UPDATE public.storage_usage su
       SET total_bytes = su.total_bytes + r.bytes,
           total_sources = su.total_sources + r.cnt
      FROM public.plans p
     WHERE su.user_id = r.user_id
       AND p.id = su.plan_id
       AND su.billing_period_end > now()
       AND su.total_bytes + r.bytes <= coalesce(su.storage_limit_bytes_override, p.storage_limit_bytes,
                                                9223372036854775807)
       AND r.max_file <= coalesce(su.max_file_bytes_override, p.max_file_bytes, 9223372036854775807);
    IF NOT FOUND THEN
      PERFORM neotoma_ops.quota_charge_storage(r.user_id, r.bytes, r.cnt, r.max_file);
    END IF;
  END LOOP;
  RETURN NULL;
END
$fn$;

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

REVOKE ALL ON FUNCTION neotoma_ops.quota_sources_insert_trg() FROM PUBLIC, anon, authenticated;
REVOKE ALL ON FUNCTION neotoma_ops.quota_sources_truncate_trg() FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION neotoma_ops.quota_sources_truncate_trg() TO service_role;
REVOKE ALL ON FUNCTION neotoma_ops.quota_sources_update_trg() FROM PUBLIC, anon, authenticated;
REVOKE ALL ON FUNCTION neotoma_ops.quota_sources_delete_trg() FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION neotoma_ops.quota_sources_insert_trg() TO service_role;
GRANT EXECUTE ON FUNCTION neotoma_ops.quota_sources_update_trg() TO service_role;
GRANT EXECUTE ON FUNCTION neotoma_ops.quota_sources_delete_trg() TO service_role;

-- (UPDATE triggers with transition tables cannot name columns; the function ignores rows whose user_id and
-- file_size did not change.)
CREATE OR REPLACE TRIGGER quota_sources_insert
  AFTER INSERT ON public.sources
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION neotoma_ops.quota_sources_insert_trg();
CREATE OR REPLACE TRIGGER quota_sources_update
  AFTER UPDATE ON public.sources
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION neotoma_ops.quota_sources_update_trg();
CREATE OR REPLACE TRIGGER quota_sources_delete
  AFTER DELETE ON public.sources
  REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION neotoma_ops.quota_sources_delete_trg();
CREATE OR REPLACE TRIGGER quota_sources_truncate
  AFTER TRUNCATE ON public.sources
  FOR EACH STATEMENT EXECUTE FUNCTION neotoma_ops.quota_sources_truncate_trg();
