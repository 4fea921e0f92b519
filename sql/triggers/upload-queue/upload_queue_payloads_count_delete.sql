-- requires: 0005_upload-queue
-- Trigger upload_queue_payloads_count_delete on public.upload_queue_payloads: keeps the bytes the upload queue
-- holds (neotoma_ops.upload_queue_payload_bytes_held(), the outage budget) true for every writer: deleted
-- payloads (a completed job, a job deleted with its source) give their bytes back, in the same transaction,
-- never refused, and without waiting on writers that add bytes (neotoma_ops.upload_queue_payload_bytes_add()).
-- Statement-level with a transition table: one count per statement (a batch of completions is one). Payload
-- sizes are read from the TOAST pointers; the bytes themselves are not fetched.
CREATE OR REPLACE FUNCTION neotoma_ops.upload_queue_payloads_count_delete_trg()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  v_old bigint;
BEGIN
  SELECT coalesce(sum(pg_catalog.octet_length(o.content)), 0)::bigint INTO v_old FROM old_rows AS o;
  IF v_old <> 0 THEN
    PERFORM neotoma_ops.upload_queue_payload_bytes_add(-v_old, 0);
  END IF;
  RETURN NULL;
END
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.upload_queue_payloads_count_delete_trg() FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.upload_queue_payloads_count_delete_trg() TO service_role;

CREATE OR REPLACE TRIGGER upload_queue_payloads_count_delete
  AFTER DELETE ON public.upload_queue_payloads
  REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION neotoma_ops.upload_queue_payloads_count_delete_trg();
