-- Up Migration
-- Failed jobs wait for an operator: ops_metrics() counts them and `requeue --all-failed --since` lists
-- them by failure time. A partial index keeps both proportional to the failed jobs alone.
CREATE INDEX IF NOT EXISTS upload_queue_failed_at_idx ON public.upload_queue (failed_at) WHERE status = 'failed';

-- Down Migration
DROP INDEX IF EXISTS public.upload_queue_failed_at_idx;
