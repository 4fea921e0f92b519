-- requires: 0005_upload-queue
-- Trigger upload_queue_payloads_count_insert on public.upload_queue_payloads: keeps the bytes the upload queue
-- holds (neotoma_ops.upload_queue_payload_bytes_held(), the outage budget) true for every writer: a new payload
-- adds its bytes, in the same transaction, and is refused with PT503 when the queue would hold more than its cap
-- (neotoma_ops.upload_queue_payload_bytes_add()).
-- Statement-level with a transition table: one count per statement (a batch of enqueues is one). Payload sizes
-- are read from the TOAST pointers; the bytes themselves are not fetched.
CREATE OR REPLACE FUNCTION neotoma_ops.upload_queue_payloads_count_insert_trg()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  v_new bigint;
BEGIN
  SELECT coalesce(sum(pg_catalog.octet_length(n.content)), 0)::bigint INTO v_new FROM new_rows AS n;
  IF v_new <> 0 THEN
    PERFORM neotoma_ops.upload_queue_payload_bytes_add(v_new, v_new);
  END IF;
  RETURN NULL;
END
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.upload_queue_payloads_count_insert_trg() FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.upload_queue_payloads_count_insert_trg() TO service_role;

CREATE OR REPLACE TRIGGER upload_queue_payloads_count_insert
  AFTER INSERT ON public.upload_queue_payloads
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION neotoma_ops.upload_queue_payloads_count_insert_trg();
