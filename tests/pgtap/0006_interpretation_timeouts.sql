-- Interpretation timeouts (docs/interpretation-timeouts.md): columns, partial index, settings, pg_cron job, privileges; the
-- trigger that stamps timeout_at; heartbeat_interpretation(); the run lifecycle functions; and
-- cleanup_stale_interpretations() (Neotoma IT-002, IT-008, pending runs, idempotence, bounded batches).
-- Concurrency (two sessions) and pg_cron firing are proven in tests/ts/interpretation*.test.ts.
-- now() is constant inside this transaction: deadlines are placed relative to it.
BEGIN;
SELECT plan(64);

-- fixtures: one user, one source
INSERT INTO public.sources (id, user_id, content_hash, mime_type, storage_url, file_size)
VALUES ('30000000-0000-0000-0000-000000000001', '30000000-0000-0000-0000-0000000000aa', repeat('3', 64),
        'text/plain', '30000000-0000-0000-0000-0000000000aa/' || repeat('3', 64), 10);

CREATE FUNCTION pg_temp.new_run(p_id uuid, p_status text) RETURNS uuid LANGUAGE sql AS $$
  INSERT INTO public.interpretation_runs (id, user_id, source_id, interpretation_config, status)
  VALUES (p_id, '30000000-0000-0000-0000-0000000000aa', '30000000-0000-0000-0000-000000000001',
          '{"model":"test"}', p_status)
  RETURNING id
$$;
CREATE FUNCTION pg_temp.run_json(p_id uuid) RETURNS jsonb LANGUAGE sql AS $$
  SELECT to_jsonb(r) FROM public.interpretation_runs AS r WHERE r.id = p_id
$$;
CREATE FUNCTION pg_temp.counter(p_name text) RETURNS bigint LANGUAGE sql AS $$
  SELECT value FROM neotoma_ops.interpretation_counters WHERE counter = p_name
$$;

-- ── schema ───────────────────────────────────────────────────────────────────────────────────────────
SELECT has_column('public', 'interpretation_runs', 'timeout_at', 'interpretation_runs.timeout_at exists');
SELECT has_column('public', 'interpretation_runs', 'heartbeat_at', 'interpretation_runs.heartbeat_at exists');
SELECT col_type_is('public', 'interpretation_runs', 'timeout_at', 'timestamp with time zone', 'timeout_at is timestamptz');
SELECT col_type_is('public', 'interpretation_runs', 'heartbeat_at', 'timestamp with time zone', 'heartbeat_at is timestamptz');
SELECT has_index('public', 'interpretation_runs', 'interpretation_runs_active_timeout_at_idx', 'the sweep has its index');
SELECT matches(
  (SELECT indexdef FROM pg_catalog.pg_indexes WHERE schemaname = 'public'
      AND indexname = 'interpretation_runs_active_timeout_at_idx'),
  '\(timeout_at\) WHERE \(status = ANY \(ARRAY\[''pending''::text, ''running''::text\]\)\)$',
  'the index is on timeout_at and holds active (pending/running) runs only');

SELECT is((SELECT run_timeout FROM neotoma_ops.interpretation_settings), interval '10 minutes',
  'the configured run timeout defaults to 10 minutes');
SELECT is(public.interpretation_run_timeout(), interval '10 minutes', 'interpretation_run_timeout() reads it');
SELECT throws_ok(
  $$INSERT INTO neotoma_ops.interpretation_settings (singleton) VALUES (false)$$,
  '23514', NULL, 'the settings table holds one row only');
SELECT throws_like(
  $$UPDATE neotoma_ops.interpretation_settings SET run_timeout = interval '0 seconds'$$,
  '%interpretation_settings_run_timeout_between_1_second_and_1_day%', 'a zero timeout is refused, naming the rule');

SELECT is(
  (SELECT array_agg((schedule, command, database, active)::text) FROM cron.job
    WHERE jobname = 'stale-interpretation-cleanup'),
  ARRAY[('*/5 * * * *'::text, 'SELECT public.cleanup_stale_interpretations()'::text, current_database()::text, true)::text],
  'pg_cron job stale-interpretation-cleanup runs one function call every 5 minutes in this database');

-- ── privileges ───────────────────────────────────────────────────────────────────────────────────────
CREATE TEMP TABLE fns (sig text) ON COMMIT DROP;
INSERT INTO fns VALUES ('public.cleanup_stale_interpretations()'), ('public.heartbeat_interpretation(uuid)'),
  ('public.start_interpretation_run(uuid)'), ('public.complete_interpretation_run(uuid,integer,integer)'),
  ('public.fail_interpretation_run(uuid,text)'), ('public.interpretation_run_timeout()'),
  ('neotoma_ops.interpretation_runs_stamp_timeout()');
SELECT is((SELECT count(*)::integer FROM fns, unnest(ARRAY['anon', 'authenticated']) AS role
            WHERE has_function_privilege(role, sig, 'EXECUTE')), 0,
  'anon and authenticated cannot execute any interpretation-timeout function');
SELECT is((SELECT count(*)::integer FROM fns WHERE has_function_privilege('service_role', sig, 'EXECUTE')), 7,
  'service_role can execute every interpretation-timeout function');
SELECT is((SELECT count(*)::integer FROM fns
            WHERE NOT EXISTS (SELECT 1 FROM unnest((SELECT proconfig FROM pg_catalog.pg_proc
                                                    WHERE oid = sig::regprocedure)) AS c
                               WHERE c LIKE 'search_path=%')), 0,
  'every interpretation-timeout function pins search_path');
SELECT ok((SELECT prosecdef FROM pg_catalog.pg_proc WHERE oid = 'public.cleanup_stale_interpretations()'::regprocedure),
  'the sweep is SECURITY DEFINER (it writes bookkeeping clients cannot)');
SELECT is((SELECT count(*)::integer FROM unnest(ARRAY['neotoma_ops.interpretation_settings',
                                                     'neotoma_ops.interpretation_counters']) AS t,
                                        unnest(ARRAY['anon', 'authenticated']) AS role
            WHERE has_table_privilege(role, t, 'SELECT')), 0,
  'clients cannot read the settings or the counters');
SELECT is((SELECT count(*)::integer FROM pg_catalog.pg_class
            WHERE oid IN ('neotoma_ops.interpretation_settings'::regclass, 'neotoma_ops.interpretation_counters'::regclass)
              AND relrowsecurity), 2, 'RLS is enabled on both new tables');

-- ── trigger: stamping timeout_at ─────────────────────────────────────────────────────────────────────
SELECT pg_temp.new_run('30000000-0000-0000-0000-000000000101', 'pending');
SELECT is((SELECT timeout_at FROM public.interpretation_runs WHERE id = '30000000-0000-0000-0000-000000000101'),
  now() + interval '10 minutes', 'a pending run is stamped now() + 10 minutes on insert');
SELECT is((SELECT heartbeat_at FROM public.interpretation_runs WHERE id = '30000000-0000-0000-0000-000000000101'),
  NULL, 'a new run has no heartbeat yet');

INSERT INTO public.interpretation_runs (id, user_id, source_id, interpretation_config, status, timeout_at)
VALUES ('30000000-0000-0000-0000-000000000102', '30000000-0000-0000-0000-0000000000aa',
        '30000000-0000-0000-0000-000000000001', '{}', 'running', now() + interval '5 days');
SELECT is((SELECT timeout_at FROM public.interpretation_runs WHERE id = '30000000-0000-0000-0000-000000000102'),
  now() + interval '10 minutes', 'a client-supplied timeout_at is replaced: the database sets the deadline');

SELECT pg_temp.new_run('30000000-0000-0000-0000-000000000103', 'completed');
SELECT is((SELECT timeout_at FROM public.interpretation_runs WHERE id = '30000000-0000-0000-0000-000000000103'),
  NULL, 'a run inserted already completed gets no deadline');

UPDATE neotoma_ops.interpretation_settings SET run_timeout = interval '3 minutes';
SELECT pg_temp.new_run('30000000-0000-0000-0000-000000000104', 'pending');
SELECT is((SELECT timeout_at FROM public.interpretation_runs WHERE id = '30000000-0000-0000-0000-000000000104'),
  now() + interval '3 minutes', 'an operator''s new run_timeout applies to the next stamp, no migration needed');
UPDATE neotoma_ops.interpretation_settings SET run_timeout = interval '10 minutes';

UPDATE public.interpretation_runs SET timeout_at = now() - interval '1 hour'
 WHERE id = '30000000-0000-0000-0000-000000000101';
UPDATE public.interpretation_runs SET status = 'running' WHERE id = '30000000-0000-0000-0000-000000000101';
SELECT is((SELECT timeout_at FROM public.interpretation_runs WHERE id = '30000000-0000-0000-0000-000000000101'),
  now() + interval '10 minutes', 'moving to running stamps a fresh deadline');

UPDATE public.interpretation_runs SET timeout_at = now() + interval '7 minutes', observations_created = 4
 WHERE id = '30000000-0000-0000-0000-000000000101';
SELECT is((SELECT timeout_at FROM public.interpretation_runs WHERE id = '30000000-0000-0000-0000-000000000101'),
  now() + interval '7 minutes', 'an update that keeps the status does not restamp');

SELECT public.heartbeat_interpretation('30000000-0000-0000-0000-000000000104');
UPDATE public.interpretation_runs SET status = 'completed', completed_at = now()
 WHERE id = '30000000-0000-0000-0000-000000000104';
SELECT is(
  (SELECT (timeout_at, heartbeat_at)::text FROM public.interpretation_runs WHERE id = '30000000-0000-0000-0000-000000000104'),
  (now() + interval '10 minutes', now())::text,
  'completion clears nothing: timeout_at and heartbeat_at stay as history');

-- ── heartbeat_interpretation ─────────────────────────────────────────────────────────────────────────
SELECT pg_temp.new_run('30000000-0000-0000-0000-000000000201', 'running');
UPDATE public.interpretation_runs
   SET timeout_at = now() + interval '1 minute', heartbeat_at = now() - interval '9 minutes'
 WHERE id = '30000000-0000-0000-0000-000000000201';
SELECT is(public.heartbeat_interpretation('30000000-0000-0000-0000-000000000201'), now() + interval '10 minutes',
  'heartbeat returns the new deadline, now() + the timeout');
SELECT is(
  (SELECT (timeout_at, heartbeat_at)::text FROM public.interpretation_runs WHERE id = '30000000-0000-0000-0000-000000000201'),
  (now() + interval '10 minutes', now())::text,
  'heartbeat pushes timeout_at forward and sets heartbeat_at = now()');

SELECT pg_temp.new_run('30000000-0000-0000-0000-000000000202', 'pending');
UPDATE public.interpretation_runs SET timeout_at = now() + interval '30 seconds'
 WHERE id = '30000000-0000-0000-0000-000000000202';
SELECT is(public.heartbeat_interpretation('30000000-0000-0000-0000-000000000202'), now() + interval '10 minutes',
  'a pending run may heartbeat too');

SELECT pg_temp.new_run('30000000-0000-0000-0000-000000000203', 'completed');
UPDATE public.interpretation_runs SET heartbeat_at = now() - interval '1 day', completed_at = now() - interval '1 hour'
 WHERE id = '30000000-0000-0000-0000-000000000203';
CREATE TEMP TABLE snap ON COMMIT DROP AS SELECT pg_temp.run_json('30000000-0000-0000-0000-000000000203') AS j;
SELECT throws_ok(
  $$SELECT public.heartbeat_interpretation('30000000-0000-0000-0000-000000000203')$$,
  '55000',
  'heartbeat_interpretation: interpretation run 30000000-0000-0000-0000-000000000203 is completed, not pending or running; nothing changed',
  'heartbeat on a completed run raises 55000 naming the run and its status');
SELECT is(pg_temp.run_json('30000000-0000-0000-0000-000000000203'), (SELECT j FROM snap),
  'heartbeat on a completed run changes nothing');
SELECT throws_ok(
  $$SELECT public.heartbeat_interpretation('30000000-0000-0000-0000-0000000009ff')$$,
  'P0002',
  'heartbeat_interpretation: interpretation run 30000000-0000-0000-0000-0000000009ff does not exist',
  'heartbeat on an unknown run raises P0002');
SELECT throws_ok($$SELECT public.heartbeat_interpretation(NULL)$$, '22023',
  'heartbeat_interpretation: p_run_id must not be NULL', 'heartbeat without a run id raises 22023');

-- ── roles in practice ────────────────────────────────────────────────────────────────────────────────
SELECT pg_temp.new_run('30000000-0000-0000-0000-000000000251', 'pending');
SET LOCAL ROLE service_role;
SELECT lives_ok(
  $$SELECT public.start_interpretation_run('30000000-0000-0000-0000-000000000251'),
           public.heartbeat_interpretation('30000000-0000-0000-0000-000000000251'),
           public.cleanup_stale_interpretations()$$,
  'the service role can start, heartbeat and sweep');
RESET ROLE;
SET LOCAL ROLE authenticated;
SELECT throws_ok($$SELECT public.heartbeat_interpretation('30000000-0000-0000-0000-000000000251')$$, '42501', NULL,
  'a client (authenticated) cannot heartbeat a run');
RESET ROLE;

-- ── lifecycle functions ──────────────────────────────────────────────────────────────────────────────
SELECT pg_temp.new_run('30000000-0000-0000-0000-000000000301', 'pending');
UPDATE public.interpretation_runs SET started_at = now() - interval '1 hour', timeout_at = now() + interval '1 minute'
 WHERE id = '30000000-0000-0000-0000-000000000301';
SELECT is(public.start_interpretation_run('30000000-0000-0000-0000-000000000301'), now() + interval '10 minutes',
  'start returns the fresh deadline');
SELECT is(
  (SELECT (status, started_at, heartbeat_at, timeout_at)::text FROM public.interpretation_runs
    WHERE id = '30000000-0000-0000-0000-000000000301'),
  ('running'::text, now(), now(), now() + interval '10 minutes')::text,
  'start moves pending to running with started_at, heartbeat_at and a fresh timeout_at');
SELECT ok(public.complete_interpretation_run('30000000-0000-0000-0000-000000000301', 12, 3),
  'complete on a running run returns true');
SELECT is(
  (SELECT (status, completed_at, observations_created, unknown_fields_count, error_message)::text
     FROM public.interpretation_runs WHERE id = '30000000-0000-0000-0000-000000000301'),
  ('completed'::text, now(), 12, 3, NULL::text)::text,
  'complete records the counts and completed_at');
SELECT throws_ok($$SELECT public.start_interpretation_run('30000000-0000-0000-0000-000000000301')$$, '55000',
  'start_interpretation_run: interpretation run 30000000-0000-0000-0000-000000000301 is completed, not pending or running; nothing changed',
  'a finished run cannot be started again');

SELECT pg_temp.new_run('30000000-0000-0000-0000-000000000302', 'failed');
UPDATE public.interpretation_runs SET error_message = 'Timeout - no heartbeat', completed_at = now() - interval '1 minute'
 WHERE id = '30000000-0000-0000-0000-000000000302';
DELETE FROM snap;
INSERT INTO snap SELECT pg_temp.run_json('30000000-0000-0000-0000-000000000302');
SELECT is(public.complete_interpretation_run('30000000-0000-0000-0000-000000000302', 5, 0), false,
  'complete on a failed run returns false');
SELECT is(public.fail_interpretation_run('30000000-0000-0000-0000-000000000302', 'worker error'), false,
  'fail on a failed run returns false');
SELECT is(pg_temp.run_json('30000000-0000-0000-0000-000000000302'), (SELECT j FROM snap),
  'a failed run is never overwritten by a late completion or failure');

SELECT pg_temp.new_run('30000000-0000-0000-0000-000000000303', 'running');
SELECT ok(public.fail_interpretation_run('30000000-0000-0000-0000-000000000303', 'model returned garbage'),
  'fail on a running run returns true');
SELECT is(
  (SELECT (status, completed_at, error_message)::text FROM public.interpretation_runs
    WHERE id = '30000000-0000-0000-0000-000000000303'),
  ('failed'::text, now(), 'model returned garbage'::text)::text, 'fail records the message and completed_at');
SELECT throws_ok($$SELECT public.complete_interpretation_run('30000000-0000-0000-0000-000000000303', -1, 0)$$,
  '22023', 'complete_interpretation_run: p_observations_created must be 0 or more, got -1',
  'a negative count is refused with 22023 naming the field');
SELECT throws_ok($$SELECT public.fail_interpretation_run('30000000-0000-0000-0000-000000000303', '  ')$$,
  '22023', 'fail_interpretation_run: p_error_message must not be empty', 'an empty error message is refused');
SELECT throws_ok($$SELECT public.complete_interpretation_run('30000000-0000-0000-0000-0000000009ff')$$,
  'P0002', 'complete_interpretation_run: interpretation run 30000000-0000-0000-0000-0000000009ff does not exist',
  'complete on an unknown run raises P0002');

-- ── cleanup_stale_interpretations ────────────────────────────────────────────────────────────────────
-- Start from a clean slate: no stale run of this transaction's fixtures is left other than those below.
UPDATE public.interpretation_runs SET timeout_at = now() + interval '10 minutes'
 WHERE status IN ('pending', 'running') AND timeout_at < now();
CREATE TEMP TABLE c0 ON COMMIT DROP AS SELECT counter, value FROM neotoma_ops.interpretation_counters;
CREATE FUNCTION pg_temp.delta(p_name text) RETURNS bigint LANGUAGE sql AS $$
  SELECT pg_temp.counter(p_name) - (SELECT value FROM c0 WHERE counter = p_name)
$$;

-- IT-002: A has a passed deadline and a far-past heartbeat; B a future deadline and a recent heartbeat.
SELECT pg_temp.new_run('30000000-0000-0000-0000-0000000004a1', 'running');
UPDATE public.interpretation_runs
   SET timeout_at = now() - interval '5 minutes', heartbeat_at = now() - interval '1 hour'
 WHERE id = '30000000-0000-0000-0000-0000000004a1';
SELECT pg_temp.new_run('30000000-0000-0000-0000-0000000004b1', 'running');
UPDATE public.interpretation_runs
   SET timeout_at = now() + interval '9 minutes', heartbeat_at = now() - interval '1 minute'
 WHERE id = '30000000-0000-0000-0000-0000000004b1';
DELETE FROM snap;
INSERT INTO snap SELECT pg_temp.run_json('30000000-0000-0000-0000-0000000004b1');

SELECT is(public.cleanup_stale_interpretations(), 1, 'IT-002: the sweep fails exactly the one stale run');
SELECT is(
  (SELECT (status, error_message, completed_at)::text FROM public.interpretation_runs
    WHERE id = '30000000-0000-0000-0000-0000000004a1'),
  ('failed'::text, 'Timeout - no heartbeat'::text, now())::text,
  'IT-002: run A is failed with ''Timeout - no heartbeat'' and completed_at set');
SELECT is(pg_temp.run_json('30000000-0000-0000-0000-0000000004b1'), (SELECT j FROM snap),
  'IT-002: run B is untouched');
SELECT is(pg_temp.delta('timeouts_total'), 1::bigint, 'IT-002: the timeout counter went up by one');
SELECT is(pg_temp.delta('timeouts_running_total'), 1::bigint, 'the timeout is counted as one from running');
SELECT throws_ok($$SELECT public.heartbeat_interpretation('30000000-0000-0000-0000-0000000004a1')$$, '55000',
  'heartbeat_interpretation: interpretation run 30000000-0000-0000-0000-0000000004a1 is failed, not pending or running; nothing changed',
  'a heartbeat arriving after the sweep failed the run is refused');

-- IT-008: last heartbeat 15 minutes ago (deadline 5 minutes ago) vs 2 minutes ago (deadline in 8 minutes).
SELECT pg_temp.new_run('30000000-0000-0000-0000-0000000005c1', 'running');
SELECT pg_temp.new_run('30000000-0000-0000-0000-0000000005d1', 'running');
UPDATE public.interpretation_runs
   SET heartbeat_at = now() - interval '15 minutes', timeout_at = now() - interval '15 minutes' + interval '10 minutes'
 WHERE id = '30000000-0000-0000-0000-0000000005c1';
UPDATE public.interpretation_runs
   SET heartbeat_at = now() - interval '2 minutes', timeout_at = now() - interval '2 minutes' + interval '10 minutes'
 WHERE id = '30000000-0000-0000-0000-0000000005d1';
-- a pending run that never started: inserted 11 minutes ago, never heartbeated
SELECT pg_temp.new_run('30000000-0000-0000-0000-0000000005e1', 'pending');
UPDATE public.interpretation_runs
   SET created_at = now() - interval '11 minutes', started_at = now() - interval '11 minutes',
       timeout_at = now() - interval '1 minute'
 WHERE id = '30000000-0000-0000-0000-0000000005e1';
-- a finished run whose old deadline passed long ago is history, not work
SELECT pg_temp.new_run('30000000-0000-0000-0000-0000000005f1', 'completed');
UPDATE public.interpretation_runs SET timeout_at = now() - interval '1 day', completed_at = now() - interval '1 day'
 WHERE id = '30000000-0000-0000-0000-0000000005f1';
DELETE FROM snap;
INSERT INTO snap SELECT pg_temp.run_json('30000000-0000-0000-0000-0000000005f1');

SELECT is(public.cleanup_stale_interpretations(), 2, 'the second sweep fails the 15-minute-silent and the never-started run');
SELECT is((SELECT status FROM public.interpretation_runs WHERE id = '30000000-0000-0000-0000-0000000005c1'), 'failed',
  'IT-008: a run whose last heartbeat was 15 minutes ago is failed');
SELECT is((SELECT status FROM public.interpretation_runs WHERE id = '30000000-0000-0000-0000-0000000005d1'), 'running',
  'IT-008: a run heartbeated 2 minutes ago keeps running');
SELECT is(
  (SELECT (status, error_message)::text FROM public.interpretation_runs WHERE id = '30000000-0000-0000-0000-0000000005e1'),
  ('failed'::text, 'Timeout - no heartbeat'::text)::text, 'a pending run that never started times out too');
SELECT is(pg_temp.delta('timeouts_pending_total'), 1::bigint, 'the pending timeout is counted as one from pending');
SELECT is(pg_temp.run_json('30000000-0000-0000-0000-0000000005f1'), (SELECT j FROM snap),
  'a completed run with a passed deadline is left alone');

-- run twice in a row: the second call does nothing
DELETE FROM c0;
INSERT INTO c0 SELECT counter, value FROM neotoma_ops.interpretation_counters;
SELECT is(public.cleanup_stale_interpretations(), 0, 'the sweep run again right away fails nothing');
SELECT is((SELECT sum(value) FROM neotoma_ops.interpretation_counters),
          (SELECT sum(value) FROM c0), 'and counts nothing');

-- bounded batches: 2 runs per batch, 2 batches per call; 5 stale runs take three calls
UPDATE neotoma_ops.interpretation_settings SET sweep_batch_size = 2, sweep_max_batches = 2;
SELECT pg_temp.new_run(('30000000-0000-0000-0000-0000000006' || lpad(i::text, 2, '0'))::uuid, 'pending')
  FROM generate_series(1, 5) AS i;
UPDATE public.interpretation_runs SET timeout_at = now() - interval '1 second'
 WHERE id::text LIKE '30000000-0000-0000-0000-0000000006%';
SELECT is(public.cleanup_stale_interpretations(), 4, 'one call fails at most batch size x max batches runs');
SELECT is(public.cleanup_stale_interpretations(), 1, 'the next call fails the rest');
SELECT is((SELECT count(*)::integer FROM public.interpretation_runs
            WHERE id::text LIKE '30000000-0000-0000-0000-0000000006%' AND status = 'failed'), 5,
  'all five were failed, none twice');

SELECT * FROM finish();
ROLLBACK;
