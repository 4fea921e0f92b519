-- requires: 0005_upload-queue
-- neotoma_ops.upload_queue_counter_totals(): every upload queue event counter with its total over the shards (0
-- when never counted), for ops_metrics(). Internal (EXECUTE for service_role only).
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

REVOKE ALL ON FUNCTION neotoma_ops.upload_queue_counter_totals() FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.upload_queue_counter_totals() TO service_role;
