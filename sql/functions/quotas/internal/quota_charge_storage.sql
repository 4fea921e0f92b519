-- requires: 0004_quotas
-- neotoma_ops.quota_charge_storage(p_user_id, p_bytes, p_sources, p_max_file_bytes): adds p_bytes /
-- p_sources to the user's counters when the result stays within the storage limit (reaching it exactly is
-- allowed) and p_max_file_bytes (largest new file, NULL = none) is within the per-file limit; otherwise
-- raises PT402 STORAGE_QUOTA_EXCEEDED or PT413 FILE_TOO_LARGE. Creates the counter row when missing. Rolls
-- an ended billing period lazily.
-- Race-freedom: the increment is ONE conditional UPDATE of the user's counter row whose WHERE clause holds the
-- limit check. Under READ COMMITTED a concurrent writer waits for the row lock and re-evaluates the WHERE clause
-- on the newest row version, so check and increment are atomic and k remaining slots are granted exactly k
-- times. A missing counter row is created born true (neotoma_ops.quota_usage_rows_create: from the user's
-- existing sources and runs, INSERT ... ON CONFLICT DO NOTHING) and the UPDATE retried, so first writes never
-- raise 23505 and are checked against what the user already holds.
-- Internal: used by the triggers on sources / interpretation_runs and the public quota functions; EXECUTE for
-- service_role only.
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
       AND su.total_bytes + p_bytes <= coalesce(neotoma_ops.effective_limit(su.storage_limit_bytes_override,
             (SELECT p.storage_limit_bytes FROM public.plans p WHERE p.id = su.plan_id)), 9223372036854775807)
       AND (p_max_file_bytes IS NULL
            OR p_max_file_bytes <= coalesce(neotoma_ops.effective_limit(su.max_file_bytes_override,
                 (SELECT p.max_file_bytes FROM public.plans p WHERE p.id = su.plan_id)), 9223372036854775807))
    RETURNING su.billing_period_end INTO v_end;
    IF FOUND THEN
      IF v_end <= now() THEN
        PERFORM neotoma_ops.quota_roll_periods(ARRAY[p_user_id], now());
      END IF;
      RETURN;
    END IF;

    SELECT su.plan_id, su.total_bytes,
           neotoma_ops.effective_limit(su.storage_limit_bytes_override, p.storage_limit_bytes) AS storage_limit,
           neotoma_ops.effective_limit(su.max_file_bytes_override, p.max_file_bytes) AS max_file
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

REVOKE ALL ON FUNCTION neotoma_ops.quota_charge_storage(uuid, bigint, bigint, bigint) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.quota_charge_storage(uuid, bigint, bigint, bigint) TO service_role;
