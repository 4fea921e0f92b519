-- requires: 0004_quotas
-- public.reconcile_storage_usage(p_user_id DEFAULT NULL): repairs counter drift (pg_cron job
-- storage-usage-reconcile, nightly). For one user, or every user whose counters disagree with sources
-- (plus users with sources but no counter row): locks the counter row, recomputes total_bytes /
-- total_sources from public.sources, writes them with last_calculated = now(), and records every non-zero
-- correction in usage_drift_log. Guarantees: exact even while inserts/deletes are in flight — the row lock
-- waits for every transaction that has already counted its change, and the sum is read with a snapshot
-- taken after the lock, so a change is either in the sum or applied later on top of it (never a stale
-- overwrite). Full runs scan users in batches of 1000 and lock only drifted rows, and also make the upload
-- queue's outage budget counter true (neotoma_ops.upload_queue_payload_bytes_reconcile(), where the upload queue
-- is installed). Needs READ COMMITTED (a REPEATABLE READ snapshot would be stale: 25001). Returns the number of
-- users corrected; a full run returns 0 at once when another one holds the job's advisory lock.
CREATE OR REPLACE FUNCTION public.reconcile_storage_usage(p_user_id uuid DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  v_fixed integer := 0;
  v_last  uuid := '00000000-0000-0000-0000-000000000000'::uuid;
  v_batch uuid[];
  v_user  uuid;
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION USING ERRCODE = '25001',
      MESSAGE = format('reconcile_storage_usage needs READ COMMITTED, not %s', current_setting('transaction_isolation')),
      HINT = 'Call it outside an explicit REPEATABLE READ / SERIALIZABLE transaction.';
  END IF;
  IF p_user_id IS NOT NULL THEN
    RETURN CASE WHEN neotoma_ops.quota_reconcile_user(p_user_id) THEN 1 ELSE 0 END;
  END IF;
  IF NOT pg_catalog.pg_try_advisory_xact_lock(4203002) THEN
    RETURN 0;
  END IF;

  LOOP
    SELECT array_agg(b.user_id ORDER BY b.user_id) INTO v_batch
      FROM (SELECT su.user_id FROM public.storage_usage su
             WHERE su.user_id > v_last ORDER BY su.user_id LIMIT 1000) b;
    EXIT WHEN v_batch IS NULL;
    v_last := v_batch[array_length(v_batch, 1)];
    -- one snapshot compares counters and sources: changes made by one transaction are seen together
    FOR v_user IN
      SELECT su.user_id
        FROM public.storage_usage su
        CROSS JOIN LATERAL (SELECT coalesce(sum(GREATEST(s.file_size, 0)), 0)::bigint AS bytes, count(*)::bigint AS n
                              FROM public.sources s WHERE s.user_id = su.user_id) agg
       WHERE su.user_id = ANY (v_batch)
         AND (agg.bytes <> su.total_bytes OR agg.n <> su.total_sources)
       ORDER BY su.user_id
    LOOP
      IF neotoma_ops.quota_reconcile_user(v_user) THEN
        v_fixed := v_fixed + 1;
      END IF;
    END LOOP;
  END LOOP;

  FOR v_user IN
    SELECT DISTINCT s.user_id FROM public.sources s
     WHERE NOT EXISTS (SELECT 1 FROM public.storage_usage su WHERE su.user_id = s.user_id)
  LOOP
    IF neotoma_ops.quota_reconcile_user(v_user) THEN
      v_fixed := v_fixed + 1;
    END IF;
  END LOOP;
  -- a capability of its own (migration 0005), which may be reverted while this one stays
  IF pg_catalog.to_regprocedure('neotoma_ops.upload_queue_payload_bytes_reconcile()') IS NOT NULL THEN
    PERFORM neotoma_ops.upload_queue_payload_bytes_reconcile();
  END IF;
  RETURN v_fixed;
END
$fn$;

COMMENT ON FUNCTION public.reconcile_storage_usage(uuid) IS
  'Recomputes storage counters from sources under the counter row lock; logs corrections in usage_drift_log.';

REVOKE ALL ON FUNCTION public.reconcile_storage_usage(uuid) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.reconcile_storage_usage(uuid) TO service_role;
