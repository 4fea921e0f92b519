-- requires: 0005_upload-queue
-- Trigger upload_queue_payloads_count_update on public.upload_queue_payloads: keeps the bytes the upload queue
-- holds (neotoma_ops.upload_queue_payload_bytes_held(), the outage budget) true for every writer: replaced bytes
-- (a job enqueued again) count the difference, in the same transaction; refused with PT503 when it grows the
-- queue past its cap, never when it shrinks it (neotoma_ops.upload_queue_payload_bytes_add()).
-- Statement-level with transition tables: one count per statement. Payload sizes are read from the TOAST
-- pointers; the bytes themselves are not fetched.
CREATE OR REPLACE FUNCTION neotoma_ops.upload_queue_payloads_count_update_trg()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  v_new bigint;
  v_old bigint;
BEGIN
  SELECT coalesce(sum(pg_catalog.octet_length(n.content)), 0)::bigint INTO v_new FROM new_rows AS n;
  SELECT coalesce(sum(pg_catalog.octet_length(o.content)), 0)::bigint INTO v_old FROM old_rows AS o;
  IF v_new <> v_old THEN
    PERFORM neotoma_ops.upload_queue_payload_bytes_add(v_new - v_old, v_new);
  END IF;
  RETURN NULL;
END
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.upload_queue_payloads_count_update_trg() FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.upload_queue_payloads_count_update_trg() TO service_role;

CREATE OR REPLACE TRIGGER upload_queue_payloads_count_update
  AFTER UPDATE ON public.upload_queue_payloads
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION neotoma_ops.upload_queue_payloads_count_update_trg();
