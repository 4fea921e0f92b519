-- One definition of a stale interpretation run (neotoma_ops.interpretation_run_is_stale), shared by the sweep,
-- ops_metrics() and `neotoma-ops status`; inlined, so the sweep still reads only the index of active runs.
BEGIN;
SELECT plan(8);

CREATE FUNCTION pg_temp.plan_of(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  line text;
  whole text := '';
BEGIN
  FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
    whole := whole || line || E'\n';
  END LOOP;
  RETURN whole;
END
$$;

SELECT ok(neotoma_ops.interpretation_run_is_stale('pending', now() - interval '1 second'), 'pending past its deadline: stale');
SELECT ok(neotoma_ops.interpretation_run_is_stale('running', now() - interval '1 second'), 'running past its deadline: stale');
SELECT ok(NOT neotoma_ops.interpretation_run_is_stale('running', now() + interval '1 minute'), 'running before its deadline: not stale');
SELECT ok(NOT neotoma_ops.interpretation_run_is_stale('completed', now() - interval '1 day'), 'completed: never stale');
SELECT ok(NOT neotoma_ops.interpretation_run_is_stale('failed', now() - interval '1 day'), 'failed: never stale');
SELECT ok(NOT coalesce(neotoma_ops.interpretation_run_is_stale('running', NULL), false), 'no deadline: not stale');

SET LOCAL enable_seqscan = off;
SELECT alike(pg_temp.plan_of($$SELECT r.id FROM public.interpretation_runs r
                                WHERE neotoma_ops.interpretation_run_is_stale(r.status, r.timeout_at)
                                ORDER BY r.timeout_at LIMIT 500$$),
             '%interpretation_runs_active_timeout_at_idx%', 'the sweep''s query reads the partial index of active runs');
SELECT unalike(pg_temp.plan_of($$SELECT r.id FROM public.interpretation_runs r
                                  WHERE neotoma_ops.interpretation_run_is_stale(r.status, r.timeout_at)$$),
               '%interpretation_run_is_stale%', 'the definition is inlined');

SELECT * FROM finish();
ROLLBACK;
