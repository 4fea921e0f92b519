-- Internal quota accounting used by the triggers on sources / interpretation_runs and by the public quota
-- functions. Not callable by clients (schema neotoma_ops, EXECUTE for service_role only).
--
-- Race-freedom: every increment is ONE conditional UPDATE of the user's counter row whose WHERE clause holds
-- the limit check. Under READ COMMITTED a concurrent writer waits for the row lock and re-evaluates the
-- WHERE clause on the newest row version, so check and increment are atomic and k remaining slots are
-- granted exactly k times. A missing counter row is created born true (neotoma_ops.quota_usage_rows_create:
-- from the user's existing sources and runs, INSERT ... ON CONFLICT DO NOTHING) and the UPDATE retried, so
-- first writes never raise 23505 and are checked against what the user already holds. Decrements are clamped
-- at zero and never checked.

-- neotoma_ops.quota_roll_periods(p_user_ids, p_now): closes every ended billing period of the given users
-- (one usage_periods row per closed period: the stored one with its count, and, after an outage spanning
-- several periods, one row per skipped period with count 0), then moves each user to the period containing
-- p_now with interpretation_count_month = 0. Idempotent (rows already rolled are skipped; usage_periods
-- rows are written once). Locks the users' counter rows (in user_id order). Returns the number of users
-- rolled. Set-based: one statement for the whole set; the period bounds are computed inline with the same
-- arithmetic as public.billing_period_bounds() (anchor day clamped to the month length, in UTC, each bound
-- derived from its month, never by chaining "+1 month"), without a function call per user.
CREATE OR REPLACE FUNCTION neotoma_ops.quota_roll_periods(p_user_ids uuid[], p_now timestamptz)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  v_local  timestamp := p_now AT TIME ZONE 'UTC';
  v_month  date := date_trunc('month', p_now AT TIME ZONE 'UTC')::date;    -- first day of p_now's month
  v_prev   date;
  v_next   date;
  v_dim    integer;   -- days in v_month
  v_dprev  integer;   -- days in v_prev
  v_dnext  integer;   -- days in v_next
  v_rolled integer;
BEGIN
  v_prev  := (v_month - interval '1 month')::date;
  v_next  := (v_month + interval '1 month')::date;
  v_dim   := v_next - v_month;
  v_dprev := v_month - v_prev;
  v_dnext := (v_next + interval '1 month')::date - v_next;

  -- cheap exit (the common case of the lazy and refund paths): nobody in the set is due
  IF NOT EXISTS (SELECT 1 FROM public.storage_usage su
                  WHERE su.user_id = ANY (p_user_ids) AND su.billing_period_end <= p_now) THEN
    RETURN 0;
  END IF;

  WITH due AS (
    SELECT su.user_id, su.plan_id, su.billing_anchor_day AS anchor, su.billing_period_start AS ps,
           su.billing_period_end AS pe, su.billing_month, su.interpretation_count_month AS used,
           su.total_bytes, su.total_sources,
           coalesce(su.interpretation_limit_month_override, p.interpretation_limit_month) AS lim
      FROM public.storage_usage su
      JOIN public.plans p ON p.id = su.plan_id
     WHERE su.user_id = ANY (p_user_ids) AND su.billing_period_end <= p_now
     ORDER BY su.user_id
       FOR UPDATE OF su
  ), cur AS (
    -- the period containing p_now: it starts on the anchor day of p_now's month when that day has come,
    -- else on the anchor day of the previous month (days are dates in UTC)
    SELECT d.*,
           CASE WHEN v_local >= v_month + (LEAST(d.anchor, v_dim) - 1)
                THEN v_month + (LEAST(d.anchor, v_dim) - 1)
                ELSE v_prev + (LEAST(d.anchor, v_dprev) - 1) END AS cur_start_day,
           CASE WHEN v_local >= v_month + (LEAST(d.anchor, v_dim) - 1)
                THEN v_next + (LEAST(d.anchor, v_dnext) - 1)
                ELSE v_month + (LEAST(d.anchor, v_dim) - 1) END AS cur_end_day
      FROM due d
  ), gap AS (
    -- periods skipped by an outage: those starting at or after the stored end and ending by the current start
    SELECT c.user_id, g.start_day, g.end_day
      FROM cur c
     CROSS JOIN LATERAL (
       SELECT m::date + (LEAST(c.anchor, ((m + interval '1 month')::date - m::date)) - 1) AS start_day,
              (m + interval '1 month')::date
                + (LEAST(c.anchor, ((m + interval '2 months')::date - (m + interval '1 month')::date)) - 1) AS end_day
         FROM pg_catalog.generate_series(date_trunc('month', c.pe AT TIME ZONE 'UTC'),
                                         (c.cur_start_day - interval '1 month')::timestamp,
                                         interval '1 month') AS m
     ) g
     WHERE c.pe < c.cur_start_day::timestamp AT TIME ZONE 'UTC'
       AND g.start_day::timestamp AT TIME ZONE 'UTC' >= c.pe
       AND g.end_day <= c.cur_start_day
  ), closed AS (
    INSERT INTO public.usage_periods AS up (user_id, period_start, period_end, billing_month, plan_id,
                                            interpretation_count, interpretation_limit, total_bytes, total_sources)
    SELECT c.user_id, c.ps, c.pe, c.billing_month, c.plan_id, c.used, c.lim, c.total_bytes, c.total_sources
      FROM cur c
    UNION ALL
    SELECT g.user_id, g.start_day::timestamp AT TIME ZONE 'UTC', g.end_day::timestamp AT TIME ZONE 'UTC',
           to_char(g.start_day::timestamp, 'YYYY-MM'), c.plan_id, 0, c.lim, c.total_bytes, c.total_sources
      FROM gap g JOIN cur c ON c.user_id = g.user_id
    ON CONFLICT (user_id, period_start) DO NOTHING
  )
  UPDATE public.storage_usage su
     SET billing_period_start = c.cur_start_day::timestamp AT TIME ZONE 'UTC',
         billing_period_end = c.cur_end_day::timestamp AT TIME ZONE 'UTC',
         billing_month = to_char(c.cur_start_day::timestamp, 'YYYY-MM'),
         interpretation_count_month = 0
    FROM cur c
   WHERE su.user_id = c.user_id;
  GET DIAGNOSTICS v_rolled = ROW_COUNT;
  RETURN v_rolled;
END
$fn$;

-- neotoma_ops.quota_raise_storage / quota_raise_file_too_large / quota_raise_interpretations: count the
-- rejection (sequence: survives the rollback of the refused statement) and raise the §4.2 error.
CREATE OR REPLACE FUNCTION neotoma_ops.quota_raise_storage(p_user_id uuid, p_plan_id text, p_used bigint,
                                                           p_limit bigint, p_requested bigint)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $fn$
BEGIN
  PERFORM pg_catalog.nextval('neotoma_ops.quota_rejections_storage');
  RAISE EXCEPTION USING
    ERRCODE = 'PT402',
    MESSAGE = format('Storage quota exceeded: %s of %s used on plan %s; this upload needs %s',
                     public.format_bytes(p_used), public.format_bytes(p_limit), p_plan_id,
                     public.format_bytes(p_requested)),
    DETAIL = jsonb_build_object('code', 'STORAGE_QUOTA_EXCEEDED', 'plan', p_plan_id, 'user_id', p_user_id,
                                'used_bytes', p_used, 'limit_bytes', p_limit,
                                'requested_bytes', p_requested)::text,
    HINT = format('Delete sources you no longer need (free at least %s) or upgrade to a larger plan; '
                  'storage does not reset with the billing period.',
                  public.format_bytes(GREATEST(p_used + p_requested - p_limit, 0)));
END
$fn$;

CREATE OR REPLACE FUNCTION neotoma_ops.quota_raise_file_too_large(p_user_id uuid, p_plan_id text,
                                                                  p_file_bytes bigint, p_max_file_bytes bigint)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  v_file text := public.format_bytes(p_file_bytes);
  v_max  text := public.format_bytes(p_max_file_bytes);
BEGIN
  PERFORM pg_catalog.nextval('neotoma_ops.quota_rejections_file_size');
  IF v_file = v_max THEN
    -- rounded alike ("100 MiB exceeds ... 100 MiB"): say by how much exactly
    v_file := format('%s + %s byte%s', v_max, p_file_bytes - p_max_file_bytes,
                     CASE WHEN p_file_bytes - p_max_file_bytes = 1 THEN '' ELSE 's' END);
  END IF;
  RAISE EXCEPTION USING
    ERRCODE = 'PT413',
    MESSAGE = format('File too large: %s exceeds the per-file limit of %s on plan %s', v_file, v_max, p_plan_id),
    DETAIL = jsonb_build_object('code', 'FILE_TOO_LARGE', 'plan', p_plan_id, 'user_id', p_user_id,
                                'file_bytes', p_file_bytes, 'max_file_bytes', p_max_file_bytes)::text,
    HINT = format('Upload files of at most %s, split the file, or upgrade to a plan with a larger per-file limit.',
                  public.format_bytes(p_max_file_bytes));
END
$fn$;

CREATE OR REPLACE FUNCTION neotoma_ops.quota_raise_interpretations(p_user_id uuid, p_plan_id text, p_used integer,
                                                                   p_limit integer, p_requested integer,
                                                                   p_resets_at timestamptz)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  v_resets text := to_char(p_resets_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"');
BEGIN
  PERFORM pg_catalog.nextval('neotoma_ops.quota_rejections_interpretations');
  RAISE EXCEPTION USING
    ERRCODE = 'PT402',
    MESSAGE = format('Interpretation quota exceeded: %s of %s interpretations used this billing period on plan %s',
                     p_used, p_limit, p_plan_id),
    DETAIL = jsonb_build_object('code', 'INTERPRETATION_QUOTA_EXCEEDED', 'plan', p_plan_id, 'user_id', p_user_id,
                                'used', p_used, 'limit', p_limit, 'requested', p_requested,
                                'resets_at', v_resets)::text,
    HINT = format('The interpretation quota resets on %s UTC; upgrade to a larger plan to interpret more now.',
                  to_char(p_resets_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI'));
END
$fn$;

-- neotoma_ops.quota_charge_storage(p_user_id, p_bytes, p_sources, p_max_file_bytes): adds p_bytes /
-- p_sources to the user's counters when the result stays within the storage limit (reaching it exactly is
-- allowed) and p_max_file_bytes (largest new file, NULL = none) is within the per-file limit; otherwise
-- raises PT402 STORAGE_QUOTA_EXCEEDED or PT413 FILE_TOO_LARGE. Creates the counter row when missing. Rolls
-- an ended billing period lazily.
CREATE OR REPLACE FUNCTION neotoma_ops.quota_charge_storage(p_user_id uuid, p_bytes bigint, p_sources bigint,
                                                            p_max_file_bytes bigint)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  v_end   timestamptz;
  v_row   record;
BEGIN
  -- a NULL user or amount would match no row and loop into a misleading 40001
  IF p_user_id IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '23502', MESSAGE = 'quota_charge_storage: p_user_id must not be NULL',
      HINT = 'Pass the id of the user whose storage is charged.';
  END IF;
  IF p_bytes IS NULL OR p_sources IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('quota_charge_storage: p_bytes and p_sources must not be NULL, got %s and %s',
                       coalesce(p_bytes::text, 'NULL'), coalesce(p_sources::text, 'NULL')),
      HINT = 'Pass the bytes and the number of sources to charge (0 when none).';
  END IF;
  FOR v_attempt IN 1..5 LOOP
    UPDATE public.storage_usage su
       SET total_bytes = GREATEST(su.total_bytes + p_bytes, 0),
           total_sources = GREATEST(su.total_sources + p_sources, 0)
     WHERE su.user_id = p_user_id
       AND su.total_bytes + p_bytes <= coalesce(su.storage_limit_bytes_override,
             (SELECT p.storage_limit_bytes FROM public.plans p WHERE p.id = su.plan_id), 9223372036854775807)
       AND (p_max_file_bytes IS NULL
            OR p_max_file_bytes <= coalesce(su.max_file_bytes_override,
                 (SELECT p.max_file_bytes FROM public.plans p WHERE p.id = su.plan_id), 9223372036854775807))
    RETURNING su.billing_period_end INTO v_end;
    IF FOUND THEN
      IF v_end <= now() THEN
        PERFORM neotoma_ops.quota_roll_periods(ARRAY[p_user_id], now());
      END IF;
      RETURN;
    END IF;

    SELECT su.plan_id, su.total_bytes,
           coalesce(su.storage_limit_bytes_override, p.storage_limit_bytes) AS storage_limit,
           coalesce(su.max_file_bytes_override, p.max_file_bytes) AS max_file
      INTO v_row
      FROM public.storage_usage su JOIN public.plans p ON p.id = su.plan_id
     WHERE su.user_id = p_user_id;
    IF NOT FOUND THEN
      -- born true: the user's existing sources, less this change (already visible, added by the next UPDATE)
      PERFORM neotoma_ops.quota_usage_rows_create(ARRAY[p_user_id], p_bytes, p_sources, 0);
      CONTINUE;
    END IF;
    IF p_max_file_bytes IS NOT NULL AND v_row.max_file IS NOT NULL AND p_max_file_bytes > v_row.max_file THEN
      PERFORM neotoma_ops.quota_raise_file_too_large(p_user_id, v_row.plan_id, p_max_file_bytes, v_row.max_file);
    END IF;
    IF v_row.storage_limit IS NOT NULL AND v_row.total_bytes + p_bytes > v_row.storage_limit THEN
      PERFORM neotoma_ops.quota_raise_storage(p_user_id, v_row.plan_id, v_row.total_bytes, v_row.storage_limit,
                                              p_bytes);
    END IF;
    -- the row changed between the UPDATE and this read (plan change, delete): try again
  END LOOP;
  RAISE EXCEPTION USING ERRCODE = '40001',
    MESSAGE = format('storage quota accounting for user %s did not settle after 5 attempts', p_user_id),
    HINT = 'Retry the statement.';
END
$fn$;

-- neotoma_ops.quota_release_storage(p_user_id, p_bytes, p_sources): subtracts from the counters, clamped at
-- zero, never checked against a limit (deletes always work, even when the counter has drifted low). A user
-- without a counter row gets one born true (the release is already visible in sources).
CREATE OR REPLACE FUNCTION neotoma_ops.quota_release_storage(p_user_id uuid, p_bytes bigint, p_sources bigint)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $fn$
BEGIN
  UPDATE public.storage_usage su
     SET total_bytes = GREATEST(su.total_bytes - p_bytes, 0),
         total_sources = GREATEST(su.total_sources - p_sources, 0)
   WHERE su.user_id = p_user_id;
  IF NOT FOUND THEN
    PERFORM neotoma_ops.quota_usage_rows_create(ARRAY[p_user_id], -p_bytes, -p_sources, 0);
    UPDATE public.storage_usage su
       SET total_bytes = GREATEST(su.total_bytes - p_bytes, 0),
           total_sources = GREATEST(su.total_sources - p_sources, 0)
     WHERE su.user_id = p_user_id;
  END IF;
END
$fn$;

-- neotoma_ops.quota_charge_interpretations(p_user_id, p_count): counts p_count new interpretation runs in
-- the user's current billing period if the period's limit allows it, else raises PT402
-- INTERPRETATION_QUOTA_EXCEEDED with resets_at. Rolls an ended period first (lazy roll: a new period starts
-- at 0 without any cron run). Creates the counter row when missing.
CREATE OR REPLACE FUNCTION neotoma_ops.quota_charge_interpretations(p_user_id uuid, p_count integer)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  v_row record;
BEGIN
  -- a NULL user or count would match no row and loop into a misleading 40001
  IF p_user_id IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '23502', MESSAGE = 'quota_charge_interpretations: p_user_id must not be NULL',
      HINT = 'Pass the id of the user whose interpretations are counted.';
  END IF;
  IF p_count IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = 'quota_charge_interpretations: p_count must not be NULL',
      HINT = 'Pass the number of new interpretation runs to count.';
  END IF;
  FOR v_attempt IN 1..5 LOOP
    UPDATE public.storage_usage su
       SET interpretation_count_month = su.interpretation_count_month + p_count
     WHERE su.user_id = p_user_id
       AND su.billing_period_end > now()
       AND su.interpretation_count_month + p_count <= coalesce(su.interpretation_limit_month_override,
             (SELECT p.interpretation_limit_month FROM public.plans p WHERE p.id = su.plan_id), 2147483647);
    IF FOUND THEN
      RETURN;
    END IF;

    SELECT su.plan_id, su.interpretation_count_month AS used, su.billing_period_end,
           coalesce(su.interpretation_limit_month_override, p.interpretation_limit_month) AS lim
      INTO v_row
      FROM public.storage_usage su JOIN public.plans p ON p.id = su.plan_id
     WHERE su.user_id = p_user_id;
    IF NOT FOUND THEN
      -- born true: the user's runs of the period, less the new ones (already visible, added by the next UPDATE)
      PERFORM neotoma_ops.quota_usage_rows_create(ARRAY[p_user_id], 0, 0, p_count);
      CONTINUE;
    END IF;
    IF v_row.billing_period_end <= now() THEN
      PERFORM neotoma_ops.quota_roll_periods(ARRAY[p_user_id], now());
      CONTINUE;
    END IF;
    IF v_row.lim IS NOT NULL AND v_row.used + p_count > v_row.lim THEN
      PERFORM neotoma_ops.quota_raise_interpretations(p_user_id, v_row.plan_id, v_row.used, v_row.lim, p_count,
                                                      v_row.billing_period_end);
    END IF;
  END LOOP;
  RAISE EXCEPTION USING ERRCODE = '40001',
    MESSAGE = format('interpretation quota accounting for user %s did not settle after 5 attempts', p_user_id),
    HINT = 'Retry the statement.';
END
$fn$;

-- neotoma_ops.quota_rejection_counts(): refused statements per resource since the counters were created
-- (storage, interpretations, file_size). For ops_metrics(). After a crash a count may jump ahead by at
-- most 32 (sequences are WAL-logged in steps), never back.
CREATE OR REPLACE FUNCTION neotoma_ops.quota_rejection_counts()
RETURNS TABLE (resource text, rejections bigint)
LANGUAGE sql
STABLE
SECURITY DEFINER
SET search_path = ''
AS $fn$
  SELECT 'storage', CASE WHEN s.is_called THEN s.last_value ELSE 0 END FROM neotoma_ops.quota_rejections_storage s
  UNION ALL
  SELECT 'interpretations', CASE WHEN s.is_called THEN s.last_value ELSE 0 END
    FROM neotoma_ops.quota_rejections_interpretations s
  UNION ALL
  SELECT 'file_size', CASE WHEN s.is_called THEN s.last_value ELSE 0 END FROM neotoma_ops.quota_rejections_file_size s
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.quota_roll_periods(uuid[], timestamptz) FROM PUBLIC, anon, authenticated;
REVOKE ALL ON FUNCTION neotoma_ops.quota_raise_storage(uuid, text, bigint, bigint, bigint) FROM PUBLIC, anon, authenticated;
REVOKE ALL ON FUNCTION neotoma_ops.quota_raise_file_too_large(uuid, text, bigint, bigint) FROM PUBLIC, anon, authenticated;
REVOKE ALL ON FUNCTION neotoma_ops.quota_raise_interpretations(uuid, text, integer, integer, integer, timestamptz)
  FROM PUBLIC, anon, authenticated;
REVOKE ALL ON FUNCTION neotoma_ops.quota_charge_storage(uuid, bigint, bigint, bigint) FROM PUBLIC, anon, authenticated;
REVOKE ALL ON FUNCTION neotoma_ops.quota_release_storage(uuid, bigint, bigint) FROM PUBLIC, anon, authenticated;
REVOKE ALL ON FUNCTION neotoma_ops.quota_charge_interpretations(uuid, integer) FROM PUBLIC, anon, authenticated;
REVOKE ALL ON FUNCTION neotoma_ops.quota_rejection_counts() FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION neotoma_ops.quota_roll_periods(uuid[], timestamptz) TO service_role;
GRANT EXECUTE ON FUNCTION neotoma_ops.quota_raise_storage(uuid, text, bigint, bigint, bigint) TO service_role;
GRANT EXECUTE ON FUNCTION neotoma_ops.quota_raise_file_too_large(uuid, text, bigint, bigint) TO service_role;
GRANT EXECUTE ON FUNCTION neotoma_ops.quota_raise_interpretations(uuid, text, integer, integer, integer, timestamptz)
  TO service_role;
GRANT EXECUTE ON FUNCTION neotoma_ops.quota_charge_storage(uuid, bigint, bigint, bigint) TO service_role;
GRANT EXECUTE ON FUNCTION neotoma_ops.quota_release_storage(uuid, bigint, bigint) TO service_role;
GRANT EXECUTE ON FUNCTION neotoma_ops.quota_charge_interpretations(uuid, integer) TO service_role;
GRANT EXECUTE ON FUNCTION neotoma_ops.quota_rejection_counts() TO service_role;
