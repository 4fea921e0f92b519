-- requires: 0005_upload-queue
-- neotoma_ops.upload_queue_payload_bytes_reconcile() → the correction made (0 when none)
-- Makes the bytes the upload queue holds by its counters (neotoma_ops.upload_queue_payload_bytes_held(), the
-- outage budget) equal the payloads it really holds. Exact while writers run: a change counted before the
-- correction is in it, one counted after is added on top of it. Bytes given back are neither locked nor written,
-- so completions do not wait for it. Called by reconcile_storage_usage() (nightly).
-- Internal (EXECUTE for service_role only).
CREATE OR REPLACE FUNCTION neotoma_ops.upload_queue_payload_bytes_reconcile()
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  v_counted bigint;
  v_freed   bigint := 0::bigint;
  v_truth   bigint;
BEGIN
  -- the lock every addition takes to count itself: additions committed before it are in the snapshots below,
  -- later ones wait and add themselves on top
  SELECT h.bytes INTO v_counted FROM neotoma_ops.upload_queue_payload_bytes AS h WHERE h.singleton FOR UPDATE;
  IF NOT FOUND THEN
    RETURN 0::bigint;  -- born true on the first payload write
  END IF;
  IF pg_catalog.to_regclass('neotoma_ops.upload_queue_payload_bytes_freed') IS NULL THEN  -- absent below migration 0012
    SELECT coalesce(sum(pg_catalog.octet_length(p.content)), 0)::bigint INTO v_truth FROM public.upload_queue_payloads AS p;
  ELSE
    -- one statement, one snapshot: a transaction that gives bytes back deletes its payloads and counts them on
    -- its shard together, so the snapshot sees both or neither
    SELECT (SELECT coalesce(sum(pg_catalog.octet_length(p.content)), 0)::bigint FROM public.upload_queue_payloads AS p),
           (SELECT coalesce(sum(f.bytes), 0)::bigint FROM neotoma_ops.upload_queue_payload_bytes_freed AS f)
      INTO v_truth, v_freed;
  END IF;
  IF v_truth = v_counted - v_freed THEN
    RETURN 0::bigint;
  END IF;
  UPDATE neotoma_ops.upload_queue_payload_bytes AS h
     SET bytes = v_truth + v_freed, updated_at = pg_catalog.now()
   WHERE h.singleton;
  RETURN v_truth - (v_counted - v_freed);
END
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.upload_queue_payload_bytes_reconcile() FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.upload_queue_payload_bytes_reconcile() TO service_role;
