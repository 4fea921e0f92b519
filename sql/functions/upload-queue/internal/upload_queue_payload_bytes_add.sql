-- requires: 0005_upload-queue
-- neotoma_ops.upload_queue_payload_bytes_add(p_delta, p_new_bytes) → bigint: the outage budget. Adds p_delta (the
-- change a statement made to the bytes of public.upload_queue_payloads; negative when it deleted) to the bytes
-- the queue holds and returns the new total (neotoma_ops.upload_queue_payload_bytes_held()). When the statement
-- stored new bytes (p_new_bytes > 0), grew the total, and the total would pass
-- neotoma_ops.upload_queue_settings.payload_bytes_cap, it raises PT503 UPLOAD_QUEUE_FULL instead
-- (docs/errors.md): the statement is refused whole and writes nothing; the refusal is counted (a sequence, not
-- undone by the rollback). Below the cap nothing changes; bytes given back are never refused.
-- Exact under concurrency: an addition is checked against every addition committed before it and its own, less
-- the bytes given back by committed transactions (never by ones still running), so the cap is never passed; it
-- may be refused for bytes being given back at that very moment. Bytes given back wait on no statement that adds
-- bytes (with migration 0012; without it, they queue with them). The total is born true on the first write (the
-- payloads as that statement sees them, its own change included): a payload written before the triggers
-- existed, or by a writer that has not counted its own change yet, is counted once.
-- Internal (EXECUTE for service_role only).
CREATE OR REPLACE FUNCTION neotoma_ops.upload_queue_payload_bytes_add(p_delta bigint, p_new_bytes bigint)
RETURNS bigint
LANGUAGE plpgsql
VOLATILE
SECURITY DEFINER
SET search_path = ''
AS $fn$
DECLARE
  v_bytes   bigint;
  v_cap     bigint;
  v_pending bigint;
  v_failed  bigint;
  v_born    boolean;
BEGIN
  IF pg_catalog.to_regclass('neotoma_ops.upload_queue_payload_bytes_freed') IS NULL THEN
    -- below migration 0012 (or reverted): the one row counts every change
    UPDATE neotoma_ops.upload_queue_payload_bytes AS h
       SET bytes = h.bytes + p_delta, updated_at = pg_catalog.now()
     WHERE h.singleton
    RETURNING h.bytes INTO v_bytes;
    IF NOT FOUND THEN
      INSERT INTO neotoma_ops.upload_queue_payload_bytes AS h (singleton, bytes)
      SELECT true, coalesce(sum(pg_catalog.octet_length(p.content)), 0)::bigint FROM public.upload_queue_payloads AS p
      ON CONFLICT (singleton) DO NOTHING
      RETURNING h.bytes INTO v_bytes;
      IF NOT FOUND THEN
        -- another statement created it first: add this one's change to it
        UPDATE neotoma_ops.upload_queue_payload_bytes AS h
           SET bytes = h.bytes + p_delta, updated_at = pg_catalog.now()
         WHERE h.singleton
        RETURNING h.bytes INTO v_bytes;
      END IF;
    END IF;
  ELSE
    IF p_delta < 0 THEN
      -- bytes given back: on this backend's shard, never refused, so the singleton's lock is not needed
      INSERT INTO neotoma_ops.upload_queue_payload_bytes_freed AS f (shard, bytes)
      VALUES ((pg_catalog.pg_backend_pid() % 8)::smallint, -p_delta)
      ON CONFLICT (shard) DO UPDATE SET bytes = f.bytes + EXCLUDED.bytes;
      v_born := EXISTS (SELECT 1 FROM neotoma_ops.upload_queue_payload_bytes AS h WHERE h.singleton);
    ELSE
      UPDATE neotoma_ops.upload_queue_payload_bytes AS h
         SET bytes = h.bytes + p_delta, updated_at = pg_catalog.now()
       WHERE h.singleton;
      v_born := FOUND;
    END IF;
    IF NOT v_born THEN
      -- born now: the payloads this statement sees (its own change done) plus every byte given back (its own
      -- included), so that the bytes held equal the payloads
      INSERT INTO neotoma_ops.upload_queue_payload_bytes (singleton, bytes)
      SELECT true, (SELECT coalesce(sum(pg_catalog.octet_length(p.content)), 0)::bigint FROM public.upload_queue_payloads AS p)
                 + (SELECT coalesce(sum(f.bytes), 0)::bigint FROM neotoma_ops.upload_queue_payload_bytes_freed AS f)
      ON CONFLICT (singleton) DO NOTHING;
      IF NOT FOUND AND p_delta > 0 THEN
        -- another statement created it first, from a snapshot without this one's payloads: add them to it. (Bytes
        -- given back need nothing more: that snapshot saw the payloads, and the shard above takes them off.)
        UPDATE neotoma_ops.upload_queue_payload_bytes AS h
           SET bytes = h.bytes + p_delta, updated_at = pg_catalog.now()
         WHERE h.singleton;
      END IF;
    END IF;
    -- for an addition, read holding the singleton's lock: every addition committed before this one and this one,
    -- less the bytes given back by transactions committed by now (never by ones still running)
    v_bytes := neotoma_ops.upload_queue_payload_bytes_held();
  END IF;

  IF p_new_bytes > 0 AND p_delta > 0 THEN
    SELECT s.payload_bytes_cap INTO v_cap FROM neotoma_ops.upload_queue_settings AS s WHERE s.singleton;
    IF v_bytes > v_cap THEN
      PERFORM pg_catalog.nextval('neotoma_ops.upload_queue_full_rejections');
      -- what holds the budget: jobs still trying drain by themselves, failed ones only when requeued or deleted
      SELECT coalesce(sum(pg_catalog.octet_length(p.content)) FILTER (WHERE q.status = 'failed'), 0)::bigint,
             coalesce(sum(pg_catalog.octet_length(p.content)) FILTER (WHERE q.status <> 'failed'), 0)::bigint
        INTO v_failed, v_pending
        FROM public.upload_queue_payloads AS p JOIN public.upload_queue AS q ON q.id = p.job_id;
      v_pending := GREATEST(v_pending - p_new_bytes, 0);  -- this statement's own payloads (of pending jobs) are not held
      RAISE EXCEPTION USING
        ERRCODE = 'PT503',
        MESSAGE = pg_catalog.format('Upload queue full: it holds %s of its %s outage budget (%s for jobs still trying, %s for jobs that failed); this upload needs %s',
                                    public.format_bytes(v_bytes - p_delta), public.format_bytes(v_cap),
                                    public.format_bytes(v_pending), public.format_bytes(v_failed),
                                    public.format_bytes(p_new_bytes)),
        DETAIL = pg_catalog.jsonb_build_object('code', 'UPLOAD_QUEUE_FULL', 'held_bytes', v_bytes - p_delta,
                                               'pending_bytes', v_pending, 'failed_bytes', v_failed,
                                               'cap_bytes', v_cap, 'requested_bytes', p_new_bytes)::text,
        HINT = 'Retry later; nothing was written. Operators: '
            || CASE WHEN v_failed > 0
                    THEN 'failed jobs hold their bytes until requeued: once storage accepts uploads, run '
                      || '"neotoma-ops requeue --all-failed" (or delete the failed jobs you give up); '
                    ELSE '' END
            || CASE WHEN v_pending > 0 THEN 'jobs still trying drain by themselves once storage is back; ' ELSE '' END
            || 'or raise neotoma_ops.upload_queue_settings.payload_bytes_cap if the disk has room.';
    END IF;
  END IF;
  RETURN v_bytes;
END
$fn$;

REVOKE ALL ON FUNCTION neotoma_ops.upload_queue_payload_bytes_add(bigint, bigint) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.upload_queue_payload_bytes_add(bigint, bigint) TO service_role;
