-- Upload queue event counters (internal; feed ops_metrics()).
-- neotoma_ops.upload_queue_count(counter, n): adds n (> 0) to a counter in the caller's transaction, on a shard
--   chosen by backend pid so that concurrent workers rarely wait on the same row. A rolled-back call counts nothing.
-- neotoma_ops.upload_queue_counter_totals(): every known counter with its total (0 when never counted).
CREATE OR REPLACE FUNCTION neotoma_ops.upload_queue_count(p_counter text, p_n bigint DEFAULT 1)
RETURNS void
LANGUAGE sql
VOLATILE
SECURITY INVOKER
SET search_path = ''
AS $$
  INSERT INTO neotoma_ops.upload_queue_counters AS c (counter, shard, value)
  SELECT p_counter, (pg_catalog.pg_backend_pid() % 8)::smallint, p_n
   WHERE p_n > 0
  ON CONFLICT (counter, shard) DO UPDATE SET value = c.value + EXCLUDED.value;
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
