-- requires: 0005_upload-queue
-- neotoma_ops.upload_queue_payload_bytes_held() → bigint: the payload bytes the upload queue holds by its counters
-- (the outage budget in use), NULL until the counter is born (on the first payload write after the upgrade).
-- Equal to the payloads as the calling statement sees them: every statement that changes payloads counts its
-- change in its own transaction, so a snapshot sees a change and its count together or neither (a counter
-- changed by hand stays off until reconciled: neotoma_ops.upload_queue_payload_bytes_reconcile()). Works with
-- and without migration 0012. Internal (EXECUTE for service_role only).
CREATE OR REPLACE FUNCTION neotoma_ops.upload_queue_payload_bytes_held()
RETURNS bigint
LANGUAGE plpgsql
STABLE
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  v_bytes bigint;
BEGIN
  IF pg_catalog.to_regclass('neotoma_ops.upload_queue_payload_bytes_freed') IS NULL THEN  -- absent below migration 0012
    SELECT h.bytes INTO v_bytes FROM neotoma_ops.upload_queue_payload_bytes AS h WHERE h.singleton;
  ELSE
    SELECT h.bytes - (SELECT coalesce(sum(f.bytes), 0)::bigint FROM neotoma_ops.upload_queue_payload_bytes_freed AS f)
      INTO v_bytes FROM neotoma_ops.upload_queue_payload_bytes AS h WHERE h.singleton;
  END IF;
  RETURN v_bytes;
END
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.upload_queue_payload_bytes_held() FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.upload_queue_payload_bytes_held() TO service_role;
