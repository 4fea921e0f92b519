-- requires: 0005_upload-queue
-- neotoma_ops.upload_queue_payload_bytes_reconcile() → the correction made (0 when none)
-- Makes the bytes the upload queue holds (neotoma_ops.upload_queue_payload_bytes, the outage budget) equal the
-- payloads it really holds. Exact while writers run: it takes the counter row's lock, which every statement that
-- changes payloads takes to count its change, then sums the payloads with a snapshot taken after the lock, so a
-- change is either in the sum or added later on top of it. Called by reconcile_storage_usage() (nightly).
-- Internal (EXECUTE for service_role only).
CREATE OR REPLACE FUNCTION neotoma_ops.upload_queue_payload_bytes_reconcile()
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  v_held  bigint;
  v_truth bigint;
BEGIN
  SELECT h.bytes INTO v_held FROM neotoma_ops.upload_queue_payload_bytes AS h WHERE h.singleton FOR UPDATE;
  IF NOT FOUND THEN
    RETURN 0::bigint;  -- born true on the first payload write
  END IF;
  SELECT coalesce(sum(pg_catalog.octet_length(p.content)), 0)::bigint INTO v_truth FROM public.upload_queue_payloads AS p;
  IF v_truth = v_held THEN
    RETURN 0::bigint;
  END IF;
  UPDATE neotoma_ops.upload_queue_payload_bytes AS h SET bytes = v_truth, updated_at = pg_catalog.now() WHERE h.singleton;
  RETURN v_truth - v_held;
END
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.upload_queue_payload_bytes_reconcile() FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.upload_queue_payload_bytes_reconcile() TO service_role;
