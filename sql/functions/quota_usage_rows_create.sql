-- neotoma_ops.quota_usage_rows_create(p_user_ids, p_pending_bytes, p_pending_sources, p_pending_runs) → integer
-- Guarantees: every listed user without a counter row gets one that is born true, so the first write of a user
-- who already holds files (an upgraded v0.2.0 database) is checked against everything they hold:
--  * total_bytes / total_sources = SUM(file_size) / COUNT(*) of the user's sources (a negative size, possible
--    only in rows older than the size check, counts as 0 bytes here as in every accounting path);
--  * billing_anchor_day = the UTC day of month of the user's first activity (earliest source or run; today
--    for a new user), the period is the one containing now() (public.billing_period_bounds);
--  * interpretation_count_month = the user's runs created in that period, except runs the timeout sweep
--    failed (their unit was given back): the counting rule of docs/quotas.md;
--  * p_pending_*: changes of the calling statement that are already visible in the tables but that the caller
--    is about to add to the counter itself (a trigger's own rows); they are left out of the new row (clamped at
--    zero). Only meaningful with one user.
-- Exact under concurrency: rows are inserted ON CONFLICT DO NOTHING from one snapshot. A writer whose change
-- is not in that snapshot has not passed its own counter update yet; it then waits for this row and adds its
-- change on top. Rows that already exist are left as they are. Returns the number of rows created.
CREATE OR REPLACE FUNCTION neotoma_ops.quota_usage_rows_create(p_user_ids uuid[], p_pending_bytes bigint DEFAULT 0,
                                                               p_pending_sources bigint DEFAULT 0,
                                                               p_pending_runs integer DEFAULT 0)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  v_created integer;
BEGIN
  IF (p_pending_bytes <> 0 OR p_pending_sources <> 0 OR p_pending_runs <> 0) AND cardinality(p_user_ids) > 1 THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'quota_usage_rows_create: p_pending_bytes, p_pending_sources and p_pending_runs need exactly one user',
      HINT = 'Create the rows of several users without pending amounts.';
  END IF;

  WITH usr AS (
    SELECT DISTINCT u.user_id FROM unnest(p_user_ids) AS u (user_id) WHERE u.user_id IS NOT NULL
  ), src AS (
    SELECT s.user_id, sum(GREATEST(s.file_size, 0))::bigint AS bytes, count(*)::bigint AS n, min(s.created_at) AS first_at
      FROM public.sources s
     WHERE s.user_id = ANY (p_user_ids)
     GROUP BY s.user_id
  ), run_first AS (
    SELECT r.user_id, min(r.created_at) AS first_at
      FROM public.interpretation_runs r
     WHERE r.user_id = ANY (p_user_ids)
     GROUP BY r.user_id
  ), anchored AS (
    SELECT usr.user_id, coalesce(src.bytes, 0) AS bytes, coalesce(src.n, 0) AS n,
           EXTRACT(day FROM coalesce(LEAST(src.first_at, rf.first_at), now()) AT TIME ZONE 'UTC')::integer AS anchor
      FROM usr
      LEFT JOIN src ON src.user_id = usr.user_id
      LEFT JOIN run_first rf ON rf.user_id = usr.user_id
  ), period AS (
    SELECT a.*, b.period_start, b.period_end
      FROM anchored a
     CROSS JOIN LATERAL public.billing_period_bounds(a.anchor, now()) b
  )
  INSERT INTO public.storage_usage AS su (user_id, total_bytes, total_sources, interpretation_count_month,
                                          billing_anchor_day, billing_period_start, billing_period_end, billing_month,
                                          last_calculated)
  SELECT p.user_id, GREATEST(p.bytes - p_pending_bytes, 0), GREATEST(p.n - p_pending_sources, 0),
         GREATEST((SELECT count(*) FROM public.interpretation_runs r
                    WHERE r.user_id = p.user_id
                      AND r.created_at >= p.period_start AND r.created_at < p.period_end
                      AND NOT (r.status = 'failed' AND r.error_message IS NOT DISTINCT FROM 'Timeout - no heartbeat'))
                  - p_pending_runs, 0)::integer,
         p.anchor, p.period_start, p.period_end, to_char(p.period_start AT TIME ZONE 'UTC', 'YYYY-MM'), now()
    FROM period p
  ON CONFLICT (user_id) DO NOTHING;
  GET DIAGNOSTICS v_created = ROW_COUNT;
  RETURN v_created;
END
$fn$;

COMMENT ON FUNCTION neotoma_ops.quota_usage_rows_create(uuid[], bigint, bigint, integer) IS
  'Creates missing usage counter rows from the users'' existing sources and runs (born true); returns rows created.';
REVOKE ALL ON FUNCTION neotoma_ops.quota_usage_rows_create(uuid[], bigint, bigint, integer) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION neotoma_ops.quota_usage_rows_create(uuid[], bigint, bigint, integer) TO service_role;
