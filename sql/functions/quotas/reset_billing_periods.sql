-- requires: 0004_quotas
-- public.reset_billing_periods(p_batch_size): eager billing roll (pg_cron job billing-period-reset, hourly).
-- Rolls at most p_batch_size users whose period has ended (oldest end first), writing one usage_periods row
-- per closed period (several after an outage) and moving each to the period containing now() with the
-- interpretation count at 0. Guarantees:
--  * short transaction: the users are taken in sub-batches of at most 1,000 (one set-based roll statement
--    each, neotoma_ops.quota_roll_periods()); no new sub-batch starts once 400 ms have passed in the call,
--    so a call (= one transaction) lasts about 0.4 s plus one sub-batch at most, whatever p_batch_size;
--    call again while it returns > 0 to drain a backlog (a backlog of 1,000,000 users takes ~100 calls);
--  * rows locked by writers are skipped, never waited for (FOR UPDATE SKIP LOCKED); they are rolled lazily by
--    their own write anyway. A writer to a user of the batch waits at most for this call's commit;
--  * idempotent (a second run changes nothing); returns 0 at once when another run holds the job's advisory
--    lock. Returns the number of users rolled.
CREATE OR REPLACE FUNCTION public.reset_billing_periods(p_batch_size integer DEFAULT 10000)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  c_sub_batch constant integer := 1000;
  c_budget    constant interval := interval '400 milliseconds';
  v_t0    timestamptz := pg_catalog.clock_timestamp();
  v_ids   uuid[];
  v_total integer := 0;
  v_n     integer;
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

  LOOP
    SELECT array_agg(d.user_id) INTO v_ids
      FROM (SELECT su.user_id
              FROM public.storage_usage su
             WHERE su.billing_period_end <= now()
             ORDER BY su.billing_period_end
             LIMIT LEAST(c_sub_batch, p_batch_size - v_total)
             FOR UPDATE SKIP LOCKED) d;
    EXIT WHEN v_ids IS NULL;
    v_n := neotoma_ops.quota_roll_periods(v_ids, now());
    v_total := v_total + v_n;
    EXIT WHEN v_total >= p_batch_size OR cardinality(v_ids) < LEAST(c_sub_batch, p_batch_size - v_total + v_n)
           OR pg_catalog.clock_timestamp() - v_t0 >= c_budget;
  END LOOP;
  RETURN v_total;
END
$fn$;

COMMENT ON FUNCTION public.reset_billing_periods(integer) IS
  'Rolls up to p_batch_size users whose billing period ended (about 0.4 s of work per call at most); idempotent, catch-up safe; returns users rolled.';

REVOKE ALL ON FUNCTION public.reset_billing_periods(integer) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.reset_billing_periods(integer) TO service_role;
