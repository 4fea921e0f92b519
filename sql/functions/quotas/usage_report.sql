-- requires: 0004_quotas
-- public.usage_report(p_user_id) → the storage_usage_report row of one user, for any user. A user without a
-- counter row yet (no write so far) gets the row their first write would start from (born true: their sources
-- and runs, plan free), computed and not kept: nothing is written. States, sizes and limits come from the view
-- alone, so `neotoma-ops usage` and the view cannot disagree. Service role only (a signed-in user reads the view,
-- which shows them their own row). p_user_id NULL → 22023.
CREATE OR REPLACE FUNCTION public.usage_report(p_user_id uuid)
RETURNS TABLE (
  user_id               uuid,
  plan_id               text,
  used_bytes            bigint,
  limit_bytes           bigint,
  used_human            text,
  limit_human           text,
  percent_used          numeric,
  state                 text,
  total_sources         bigint,
  interpretations_used  integer,
  interpretations_limit integer,
  max_file_bytes        bigint,
  max_file_human        text,
  billing_period_start  timestamptz,
  billing_period_end    timestamptz,
  billing_month         text,
  resets_at             timestamptz,
  last_calculated       timestamptz,
  has_usage_row         boolean
)
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  r record;
BEGIN
  IF p_user_id IS NULL THEN
    RAISE EXCEPTION 'p_user_id must not be NULL' USING ERRCODE = '22023', HINT = 'Pass the id of the user to report on.';
  END IF;
  SELECT v.*, true AS has_row INTO r FROM public.storage_usage_report v WHERE v.user_id = p_user_id;
  IF NOT FOUND THEN
    BEGIN
      PERFORM neotoma_ops.quota_usage_rows_create(ARRAY[p_user_id]);
      SELECT v.*, false AS has_row INTO r FROM public.storage_usage_report v WHERE v.user_id = p_user_id;
      -- leave the block with an error: the counter row just created is undone
      RAISE EXCEPTION USING ERRCODE = 'PTCHK', MESSAGE = 'usage report computed';
    EXCEPTION WHEN SQLSTATE 'PTCHK' THEN
      NULL;
    END;
  END IF;
  RETURN QUERY SELECT r.user_id, r.plan_id, r.used_bytes, r.limit_bytes, r.used_human, r.limit_human, r.percent_used,
                      r.state, r.total_sources, r.interpretations_used, r.interpretations_limit, r.max_file_bytes,
                      r.max_file_human, r.billing_period_start, r.billing_period_end, r.billing_month, r.resets_at,
                      r.last_calculated, r.has_row;
END
$fn$;

REVOKE ALL ON FUNCTION public.usage_report(uuid) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.usage_report(uuid) TO service_role;
