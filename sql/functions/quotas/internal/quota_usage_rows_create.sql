-- requires: 0004_quotas
-- neotoma_ops.quota_usage_rows_create(p_user_ids, p_pending_bytes, p_pending_sources, p_pending_runs) → integer
-- Guarantees: every listed user without a counter row gets one that is born true, so the first write of a user
-- who already holds files (an upgraded v0.2.0 database) is checked against everything they hold:
--  * total_bytes / total_sources = SUM(file_size) / COUNT(*) of the user's sources (a negative size, possible
--    only in rows older than the size check, counts as 0 bytes here as in every accounting path);
--  * billing_anchor_day = the UTC day of month of the user's first activity (earliest source or run; today
--    for a new user), the period is the one containing now() (public.billing_period_bounds);
--  * interpretation_count_month = the user's runs that hold a unit of that period (charged in it and not
--    released: neotoma_ops.quota_run_holds_unit; for runs from before v0.3.0, created in it): the counting rule
--    of docs/quotas.md;
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
SET jit = off  -- a batch of 1,000 users is costed high enough to be compiled, which takes longer than running it
AS $fn$
DECLARE
  v_created integer;
BEGIN
  IF (p_pending_bytes <> 0 OR p_pending_sources <> 0 OR p_pending_runs <> 0) AND cardinality(p_user_ids) > 1 THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'quota_usage_rows_create: p_pending_bytes, p_pending_sources and p_pending_runs need exactly one user',
      HINT = 'Create the rows of several users without pending amounts.';
  END IF;

  -- per user, one index scan of their sources and one of their runs (never a scan of either table)
  WITH usr AS (
    SELECT DISTINCT u.user_id FROM unnest(p_user_ids) AS u (user_id) WHERE u.user_id IS NOT NULL
  ), held AS (
    SELECT usr.user_id, src.bytes, src.n, rn.ats, LEAST(src.first_at, rn.first_at) AS first_at
      FROM usr
     CROSS JOIN LATERAL (SELECT coalesce(sum(GREATEST(s.file_size, 0)), 0)::bigint AS bytes, count(*)::bigint AS n,
                                min(s.created_at) AS first_at
                           FROM public.sources s WHERE s.user_id = usr.user_id) src
     CROSS JOIN LATERAL (SELECT min(r.created_at) AS first_at,
                                -- when each run still holding its unit was charged (see quota_run_holds_unit)
                                array_agg(coalesce(r.quota_charged_at, r.created_at))
                                  FILTER (WHERE r.quota_released_at IS NULL
                                            AND coalesce(r.quota_charged_at, r.created_at) IS NOT NULL) AS ats
                           FROM public.interpretation_runs r WHERE r.user_id = usr.user_id) rn
  ), period AS (
    SELECT h.*, a.anchor, b.period_start, b.period_end
      FROM held h
     CROSS JOIN LATERAL (SELECT EXTRACT(day FROM coalesce(h.first_at, now()) AT TIME ZONE 'UTC')::integer AS anchor) a
     CROSS JOIN LATERAL public.billing_period_bounds(a.anchor, now()) b
  )
  INSERT INTO public.storage_usage AS su (user_id, total_bytes, total_sources, interpretation_count_month,
                                          billing_anchor_day, billing_period_start, billing_period_end, billing_month,
                                          last_calculated)
  SELECT p.user_id, GREATEST(p.bytes - p_pending_bytes, 0), GREATEST(p.n - p_pending_sources, 0),
         GREATEST((SELECT count(*) FROM unnest(p.ats) AS t (at) WHERE t.at >= p.period_start AND t.at < p.period_end)
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
