-- requires: 0005_upload-queue
-- neotoma_ops.upload_queue_counter_add(counter, n): adds n (> 0) to an upload queue event counter (they feed
-- ops_metrics()) in the caller's transaction, on a shard chosen by backend pid so that concurrent workers rarely
-- wait on the same row. A rolled-back call counts nothing. Internal (EXECUTE for service_role only).
CREATE OR REPLACE FUNCTION neotoma_ops.upload_queue_counter_add(p_counter text, p_n bigint DEFAULT 1)
RETURNS void
LANGUAGE plpgsql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
BEGIN
  -- plpgsql keeps the prepared plan for the session (a LANGUAGE sql body would be planned again on every call,
  -- which cost more than the upsert itself on every claim and completion).
  IF p_n > 0 THEN
    INSERT INTO neotoma_ops.upload_queue_counters AS c (counter, shard, value)
    VALUES (p_counter, (pg_catalog.pg_backend_pid() % 8)::smallint, p_n)
    ON CONFLICT (counter, shard) DO UPDATE SET value = c.value + EXCLUDED.value;
  END IF;
END
$$;

REVOKE ALL ON FUNCTION neotoma_ops.upload_queue_counter_add(text, bigint) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.upload_queue_counter_add(text, bigint) TO service_role;
