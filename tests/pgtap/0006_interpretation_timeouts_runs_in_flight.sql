-- neotoma_ops.stamp_runs_in_flight: the upgrade step that gives runs already in flight (written by a v0.2.0
-- worker, so without timeout_at) one full run timeout, in batches. Finished runs and runs that already have a
-- deadline are left alone.
BEGIN;
SELECT plan(5);

INSERT INTO public.sources (id, user_id, content_hash, mime_type, storage_url, file_size)
VALUES ('32000000-0000-4000-8000-0000000000f0', '32000000-0000-4000-8000-000000000001', repeat('3', 64), 'text/plain', 'k', 1);
ALTER TABLE public.interpretation_runs DISABLE TRIGGER interpretation_runs_stamp_timeout;
INSERT INTO public.interpretation_runs (id, user_id, source_id, interpretation_config, status, timeout_at)
SELECT ('32000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid, '32000000-0000-4000-8000-000000000001',
       '32000000-0000-4000-8000-0000000000f0', '{}', st, t
  FROM (VALUES (1, 'running', NULL::timestamptz), (2, 'pending', NULL), (3, 'completed', NULL),
               (4, 'running', now() + interval '3 minutes'), (5, 'running', NULL)) AS r (n, st, t);
ALTER TABLE public.interpretation_runs ENABLE TRIGGER interpretation_runs_stamp_timeout;

-- (the rest of the database may hold other runs in flight: they are stamped too)
SELECT cmp_ok(neotoma_ops.stamp_runs_in_flight(100000), '>=', 3, 'a batch stamps the runs in flight and says how many');
SELECT is((SELECT count(*)::integer FROM public.interpretation_runs
            WHERE id IN ('32000000-0000-4000-8000-000000000001', '32000000-0000-4000-8000-000000000002',
                         '32000000-0000-4000-8000-000000000005')
              AND timeout_at BETWEEN now() + public.interpretation_run_timeout() - interval '1 second'
                                 AND now() + public.interpretation_run_timeout()), 3,
  'each gets one full run timeout from now');
SELECT is(neotoma_ops.stamp_runs_in_flight(1000), NULL, 'NULL when none is left');
SELECT results_eq($$SELECT id::text, timeout_at IS NULL, timeout_at < now() + interval '4 minutes'
                      FROM public.interpretation_runs WHERE id IN ('32000000-0000-4000-8000-000000000003',
                                                                  '32000000-0000-4000-8000-000000000004') ORDER BY id$$,
  $$VALUES ('32000000-0000-4000-8000-000000000003', true, NULL::boolean),
           ('32000000-0000-4000-8000-000000000004', false, true)$$,
  'a finished run and a run with its own deadline are left alone');
SELECT throws_ok($$SELECT neotoma_ops.stamp_runs_in_flight(0)$$, '22023', NULL, 'a batch size out of range is refused');

SELECT * FROM finish();
ROLLBACK;
