-- requires: 0005_upload-queue
-- public.process_upload_queue() → {"rescued":n,"failed":n,"pruned":n,"due":n}
-- Run by pg_cron job upload-queue-processor every 5 minutes; safe to run any time, any number of times.
-- Guarded by pg_try_advisory_xact_lock(7402000200): when another run holds it, returns at once with
-- {"skipped":true,...} and changes nothing. Otherwise, in bounded batches (settings.batch_size):
--   1. jobs in progress whose lease expired count as a failed retry with error 'lease expired' (same rules as
--      fail_upload_job): "rescued" went back to pending, "failed" exhausted their retries;
--   2. completed jobs older than settings.completed_retention (default 7 days) are deleted ("pruned");
--   3. "due" = pending jobs due now; when > 0, NOTIFY upload_queue {"event":"due","due":n}.
-- Rows other sessions hold are skipped (picked up by the next run).
CREATE OR REPLACE FUNCTION public.process_upload_queue()
RETURNS jsonb
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
DECLARE
  v_settings neotoma_ops.upload_queue_settings%ROWTYPE;
  v_id       uuid;
  v_outcome  text;
  v_rescued  integer := 0;
  v_failed   integer := 0;
  v_pruned   integer := 0;
  v_due      bigint := 0::bigint;
BEGIN
  IF NOT pg_catalog.pg_try_advisory_xact_lock(7402000200) THEN
    RETURN pg_catalog.jsonb_build_object('skipped', true, 'reason', 'another process_upload_queue() run holds the lock',
                                         'rescued', 0, 'failed', 0, 'pruned', 0, 'due', 0);
  END IF;

  SELECT * INTO v_settings FROM neotoma_ops.upload_queue_settings WHERE singleton;
  IF NOT FOUND THEN
    v_settings.completed_retention := interval '7 days';
    v_settings.batch_size := 500;
  END IF;

  FOR v_id IN
    SELECT q.id FROM public.upload_queue AS q
     WHERE q.status = 'in_progress' AND q.locked_until < now()
     ORDER BY q.locked_until
     LIMIT v_settings.batch_size
       FOR UPDATE SKIP LOCKED
  LOOP
    v_outcome := neotoma_ops.upload_job_record_failure(v_id, 'lease expired', true);
    IF v_outcome = 'pending' THEN
      v_rescued := v_rescued + 1;
    ELSIF v_outcome = 'failed' THEN
      v_failed := v_failed + 1;
    END IF;
  END LOOP;
  PERFORM neotoma_ops.upload_queue_counter_add('upload_lease_expirations_total', v_rescued + v_failed);

  WITH old AS (
    SELECT q.id FROM public.upload_queue AS q
     WHERE q.status = 'completed' AND q.completed_at < now() - v_settings.completed_retention
     ORDER BY q.completed_at
     LIMIT v_settings.batch_size
       FOR UPDATE SKIP LOCKED
  )
  DELETE FROM public.upload_queue AS q USING old WHERE q.id = old.id;
  GET DIAGNOSTICS v_pruned = ROW_COUNT;
  PERFORM neotoma_ops.upload_queue_counter_add('upload_pruned_total', v_pruned);

  SELECT count(*) INTO v_due FROM public.upload_queue AS q
   WHERE q.status = 'pending' AND q.next_retry_at <= now();
  IF v_due > 0 THEN
    PERFORM pg_catalog.pg_notify('upload_queue', pg_catalog.jsonb_build_object('event', 'due', 'due', v_due)::text);
  END IF;

  RETURN pg_catalog.jsonb_build_object('rescued', v_rescued, 'failed', v_failed, 'pruned', v_pruned, 'due', v_due);
END
$$;

REVOKE ALL ON FUNCTION public.process_upload_queue() FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION public.process_upload_queue() TO service_role;
