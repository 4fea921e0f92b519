-- requires: 0004_quotas
-- Trigger quota_sources_insert on public.sources: usage accounting and quota enforcement (docs/quotas.md).
-- Statement-level AFTER trigger with a transition table: a bulk statement does one counter update per user (users
-- in uuid order, so concurrent multi-user statements cannot deadlock on counter rows). Enforced for every role,
-- the table owner included (a trigger, not a policy).
-- insert: +bytes, +sources per user; PT402 over the storage limit, PT413 for a file over max_file_bytes.
-- Fast path for a single-row statement (the common case): one aggregate pass over the transition table
-- (no grouping, no cursor), then ONE conditional UPDATE ... FROM plans that holds the period check
-- (billing_period_end > now(), a plain comparison), the storage limit and the per-file limit. A missing
-- counter row, a refusal or an ended period falls through to neotoma_ops.quota_charge_storage(), which
-- creates the row, raises the quota error (docs/errors.md) or rolls the period. Multi-row statements: one
-- counter update per user, users in uuid order.
-- A bulk statement is refused whole if any user would go over a limit. AFTER INSERT sees only rows really
-- inserted, so INSERT ... ON CONFLICT DO NOTHING of existing content counts nothing.
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
       AND su.total_bytes + v_bytes <= coalesce(neotoma_ops.effective_limit(su.storage_limit_bytes_override, p.storage_limit_bytes), 9223372036854775807)
       AND v_bytes <= coalesce(neotoma_ops.effective_limit(su.max_file_bytes_override, p.max_file_bytes), 9223372036854775807);
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
       AND su.total_bytes + r.bytes <= coalesce(neotoma_ops.effective_limit(su.storage_limit_bytes_override, p.storage_limit_bytes), 9223372036854775807)
       AND r.max_file <= coalesce(neotoma_ops.effective_limit(su.max_file_bytes_override, p.max_file_bytes), 9223372036854775807);
    IF NOT FOUND THEN
      PERFORM neotoma_ops.quota_charge_storage(r.user_id, r.bytes, r.cnt, r.max_file);
    END IF;
  END LOOP;
  RETURN NULL;
END
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.quota_sources_insert_trg() FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.quota_sources_insert_trg() TO service_role;

-- (UPDATE triggers with transition tables cannot name columns; the function ignores rows whose user_id and
-- file_size did not change.)
CREATE OR REPLACE TRIGGER quota_sources_insert
  AFTER INSERT ON public.sources
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION neotoma_ops.quota_sources_insert_trg();
