-- Puts the :stale runs failed by the previous measurement back into their stale state.
\set ON_ERROR_STOP on
SET session_replication_role = replica;
UPDATE public.interpretation_runs
   SET status = 'running', error_message = NULL, completed_at = NULL, timeout_at = now() - interval '1 minute'
 WHERE error_message = 'Timeout - no heartbeat';
UPDATE public.storage_usage SET interpretation_count_month = 50;
RESET session_replication_role;
VACUUM ANALYZE public.interpretation_runs;
