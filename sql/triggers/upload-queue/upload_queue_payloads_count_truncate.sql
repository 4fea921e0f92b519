-- requires: 0005_upload-queue
-- Trigger upload_queue_payloads_count_truncate on public.upload_queue_payloads: keeps the bytes the upload queue
-- holds (neotoma_ops.upload_queue_payload_bytes, the outage budget) true when the payloads are truncated, directly
-- or by TRUNCATE ... CASCADE from upload_queue or sources: the queue then holds nothing. TRUNCATE takes the table's
-- ACCESS EXCLUSIVE lock, so no payload write runs alongside.
CREATE OR REPLACE FUNCTION neotoma_ops.upload_queue_payloads_count_truncate_trg()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
BEGIN
  UPDATE neotoma_ops.upload_queue_payload_bytes AS h
     SET bytes = 0, updated_at = pg_catalog.now()
   WHERE h.singleton AND h.bytes <> 0;
  RETURN NULL;
END
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.upload_queue_payloads_count_truncate_trg() FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.upload_queue_payloads_count_truncate_trg() TO service_role;

CREATE OR REPLACE TRIGGER upload_queue_payloads_count_truncate
  AFTER TRUNCATE ON public.upload_queue_payloads
  FOR EACH STATEMENT EXECUTE FUNCTION neotoma_ops.upload_queue_payloads_count_truncate_trg();
