-- public.reset_billing_periods(p_batch_size): eager billing roll (pg_cron job billing-period-reset, hourly).
-- Rolls at most p_batch_size users whose period has ended (oldest end first), writing one usage_periods row
-- per closed period (several after an outage) and moving each to the period containing now() with the
-- interpretation count at 0. Guarantees: one bounded batch per call (short transaction; call again while it
-- returns > 0 to drain a backlog); rows locked by writers are skipped, never waited for (SKIP LOCKED), and
-- are rolled lazily by their own write anyway; idempotent (a second run changes nothing); returns 0 at once
-- when another run holds the job's advisory lock. Returns the number of users rolled.
CREATE OR REPLACE FUNCTION public.reset_billing_periods(p_batch_size integer DEFAULT 10000)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  v_ids uuid[];
BEGIN
  IF p_batch_size IS NULL OR p_batch_size NOT BETWEEN 1 AND 100000 THEN
    RAISE EXCEPTION USING ERRCODE = '22023',
      MESSAGE = format('reset_billing_periods: p_batch_size must be between 1 and 100000, got %s',
                       coalesce(p_batch_size::text, 'NULL')),
      HINT = 'Use the default (10000) or a smaller batch for shorter transactions.';
  END IF;
  IF NOT pg_catalog.pg_try_advisory_xact_lock(4203001) THEN
    RETURN 0;
  END IF;

  SELECT array_agg(d.user_id) INTO v_ids
    FROM (SELECT su.user_id
            FROM public.storage_usage su
           WHERE su.billing_period_end <= now()
           ORDER BY su.billing_period_end
           LIMIT p_batch_size
           FOR UPDATE SKIP LOCKED) d;
  IF v_ids IS NULL THEN
    RETURN 0;
  END IF;
  RETURN neotoma_ops.quota_roll_periods(v_ids, now());
END
$fn$;

COMMENT ON FUNCTION public.reset_billing_periods(integer) IS
  'Rolls up to p_batch_size users whose billing period ended; idempotent, catch-up safe; returns users rolled.';
REVOKE ALL ON FUNCTION public.reset_billing_periods(integer) FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION public.reset_billing_periods(integer) TO service_role;
