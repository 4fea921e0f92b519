-- Upload queue event counters (internal; feed ops_metrics()).
-- neotoma_ops.upload_queue_count(counter, n): adds n (> 0) to a counter in the caller's transaction, on a shard
--   chosen by backend pid so that concurrent workers rarely wait on the same row. A rolled-back call counts nothing.
-- neotoma_ops.upload_queue_counter_totals(): every known counter with its total (0 when never counted).
CREATE OR REPLACE FUNCTION neotoma_ops.upload_queue_count(p_counter text, p_n bigint DEFAULT 1)
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

CREATE OR REPLACE FUNCTION neotoma_ops.upload_queue_counter_totals()
RETURNS TABLE (counter text, value bigint)
LANGUAGE sql
STABLE
SECURITY INVOKER
SET search_path = ''
AS $$
  SELECT k.name, coalesce(sum(c.value), 0)::bigint
    FROM unnest(ARRAY[
           'upload_enqueued_total', 'upload_retries_total', 'upload_retry_failures_total',
           'upload_lease_expirations_total', 'upload_terminal_failures_total', 'upload_completed_total',
           'upload_requeued_total', 'upload_pruned_total']) AS k(name)
    LEFT JOIN neotoma_ops.upload_queue_counters AS c ON c.counter = k.name
   GROUP BY k.name
   ORDER BY k.name;
$$;

REVOKE ALL ON FUNCTION neotoma_ops.upload_queue_count(text, bigint) FROM PUBLIC, anon, authenticated;
REVOKE ALL ON FUNCTION neotoma_ops.upload_queue_counter_totals() FROM PUBLIC, anon, authenticated;
GRANT EXECUTE ON FUNCTION neotoma_ops.upload_queue_count(text, bigint) TO service_role;
GRANT EXECUTE ON FUNCTION neotoma_ops.upload_queue_counter_totals() TO service_role;
