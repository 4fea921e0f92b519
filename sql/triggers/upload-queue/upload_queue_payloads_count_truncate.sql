-- requires: 0005_upload-queue
-- Trigger upload_queue_payloads_count_truncate on public.upload_queue_payloads: keeps the bytes the upload queue
-- holds (neotoma_ops.upload_queue_payload_bytes_held(), the outage budget) true when the payloads are truncated,
-- directly or by TRUNCATE ... CASCADE from upload_queue or sources: the queue then holds nothing. TRUNCATE takes
-- the table's ACCESS EXCLUSIVE lock, so no payload write, and no count of one, runs alongside.
CREATE OR REPLACE FUNCTION neotoma_ops.upload_queue_payloads_count_truncate_trg()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
BEGIN
  IF pg_catalog.to_regclass('neotoma_ops.upload_queue_payload_bytes_freed') IS NULL THEN  -- absent below migration 0012
    UPDATE neotoma_ops.upload_queue_payload_bytes AS h
       SET bytes = 0, updated_at = pg_catalog.now()
     WHERE h.singleton AND h.bytes <> 0;
  ELSE
    -- held = counted - given back: counted becomes what was given back
    UPDATE neotoma_ops.upload_queue_payload_bytes AS h
       SET bytes = f.bytes, updated_at = pg_catalog.now()
      FROM (SELECT coalesce(sum(x.bytes), 0)::bigint AS bytes FROM neotoma_ops.upload_queue_payload_bytes_freed AS x) AS f
     WHERE h.singleton AND h.bytes <> f.bytes;
  END IF;
  RETURN NULL;
END
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.upload_queue_payloads_count_truncate_trg() FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.upload_queue_payloads_count_truncate_trg() TO service_role;

CREATE OR REPLACE TRIGGER upload_queue_payloads_count_truncate
  AFTER TRUNCATE ON public.upload_queue_payloads
  FOR EACH STATEMENT EXECUTE FUNCTION neotoma_ops.upload_queue_payloads_count_truncate_trg();
