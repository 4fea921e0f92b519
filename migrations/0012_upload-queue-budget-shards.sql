-- Up Migration
-- The outage budget's bytes given back, kept apart from the bytes counted in. Until now every statement that
-- changed payloads updated the one row neotoma_ops.upload_queue_payload_bytes, completions included (deleting
-- a payload gives its bytes back), so every completing transaction of every worker held that row's lock from
-- its payload delete until it committed: all completions of the database ran one after another there.
-- Bytes given back are never refused, so they need no check against the cap: they now go to rows sharded by
-- backend (neotoma_ops.upload_queue_payload_bytes_add()), and only bytes counted in (checked against
-- payload_bytes_cap, PT503 UPLOAD_QUEUE_FULL) still take the singleton's lock, which keeps check and increment
-- exact. The bytes held = the singleton's bytes - the sum of this table's (neotoma_ops.upload_queue_payload_bytes_held()).
-- A new, empty table: the functions use it once it exists and do without it before (and after a revert).
CREATE TABLE neotoma_ops.upload_queue_payload_bytes_freed (
  shard smallint NOT NULL,
  bytes bigint   NOT NULL DEFAULT 0,
  CONSTRAINT upload_queue_payload_bytes_freed_pkey PRIMARY KEY (shard),
  CONSTRAINT upload_queue_payload_bytes_freed_shard_not_negative CHECK (shard >= 0),
  CONSTRAINT upload_queue_payload_bytes_freed_bytes_not_negative CHECK (bytes >= 0)
);
COMMENT ON TABLE neotoma_ops.upload_queue_payload_bytes_freed IS
  'Payload bytes given back (deleted payloads) since they were counted in upload_queue_payload_bytes, one row per shard: bytes held = upload_queue_payload_bytes.bytes - SUM(bytes).';

ALTER TABLE neotoma_ops.upload_queue_payload_bytes_freed ENABLE ROW LEVEL SECURITY;
CREATE POLICY "Service role full access - upload_queue_payload_bytes_freed" ON neotoma_ops.upload_queue_payload_bytes_freed
  FOR ALL TO service_role USING (true) WITH CHECK (true);
REVOKE ALL ON TABLE neotoma_ops.upload_queue_payload_bytes_freed FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT, INSERT, UPDATE ON neotoma_ops.upload_queue_payload_bytes_freed TO service_role;

-- Down Migration
-- The bytes given back are folded into the singleton, which then counts the bytes held alone, as before 0012.
-- Payload writers in flight finish first (SHARE waits for them and holds new ones until the commit, when they
-- find the table gone and count on the singleton), so no one is left waiting on the table dropped here.
LOCK TABLE public.upload_queue_payloads IN SHARE MODE;
LOCK TABLE neotoma_ops.upload_queue_payload_bytes_freed IN ACCESS EXCLUSIVE MODE;
UPDATE neotoma_ops.upload_queue_payload_bytes AS h
   SET bytes = h.bytes - f.bytes, updated_at = now()
  FROM (SELECT coalesce(sum(x.bytes), 0)::bigint AS bytes FROM neotoma_ops.upload_queue_payload_bytes_freed AS x) AS f
 WHERE h.singleton AND f.bytes <> 0;
DROP TABLE IF EXISTS neotoma_ops.upload_queue_payload_bytes_freed;
