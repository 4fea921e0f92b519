-- requires: 0006_interpretation-timeouts
-- neotoma_ops.interpretation_run_is_stale(p_status, p_timeout_at) → boolean: the one definition of a stale run,
-- used by cleanup_stale_interpretations(), ops_metrics() and `neotoma-ops status`: pending or running, and its
-- deadline (timeout_at, pushed forward by heartbeats) has passed. An inlinable SQL function: a query that
-- calls it is planned as if the condition were written out, so the sweep still reads only the partial index of
-- active runs (interpretation_runs_active_timeout_at_idx).
CREATE OR REPLACE FUNCTION neotoma_ops.interpretation_run_is_stale(p_status text, p_timeout_at timestamptz)
RETURNS boolean
LANGUAGE sql
STABLE
PARALLEL SAFE
SECURITY INVOKER
AS $$
  SELECT p_status IN ('pending', 'running') AND p_timeout_at < pg_catalog.now()
$$;

REVOKE ALL ON FUNCTION neotoma_ops.interpretation_run_is_stale(text, timestamptz) FROM PUBLIC, anon, authenticated;

GRANT EXECUTE ON FUNCTION neotoma_ops.interpretation_run_is_stale(text, timestamptz) TO service_role;
