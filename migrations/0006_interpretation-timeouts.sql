-- Up Migration
-- Interpretation timeouts (docs/interpretation-timeouts.md): every pending/running run carries a deadline (timeout_at) that a
-- heartbeat pushes forward; public.cleanup_stale_interpretations(), run by pg_cron every 5 minutes, fails
-- the runs whose deadline has passed. The functions and the trigger live in sql/functions/interpretation-timeouts/
-- and sql/triggers/interpretation-timeouts/.

ALTER TABLE public.interpretation_runs
  ADD COLUMN IF NOT EXISTS timeout_at   timestamptz,
  ADD COLUMN IF NOT EXISTS heartbeat_at timestamptz;

COMMENT ON COLUMN public.interpretation_runs.timeout_at IS
  'Deadline of a pending/running run: stamped on insert and on the move to running (now() + the configured '
  'run timeout), pushed forward by heartbeat_interpretation(). Kept after completion.';
COMMENT ON COLUMN public.interpretation_runs.heartbeat_at IS
  'Last heartbeat_interpretation() call of the worker running this interpretation (NULL: never heartbeated).';


-- The sweep reads only active runs, oldest deadline first, and stops at now(): the index holds active runs
-- only, so its size follows the number of runs in flight and the sweep's cost follows the number of stale
-- ones, whatever the size of the table's history.
-- Built CONCURRENTLY by a deferred step: interpretation_runs may already hold millions of rows and keep taking
-- writes (until it exists, the sweep scans the table).
-- Runs already in flight (v0.2.0 workers never heartbeat) then get one full timeout from the upgrade: a hung
-- one is failed by the first sweep after that, a live one has time to finish. In batches after the index
-- (each a short transaction, never under this migration's table lock: there may be many such runs).
INSERT INTO neotoma_ops.deferred_steps (migration, position, description, statement, index_name, repeat) VALUES
  ('0006_interpretation-timeouts', 1, 'build index interpretation_runs_active_timeout_at_idx',
   $$CREATE INDEX CONCURRENTLY IF NOT EXISTS interpretation_runs_active_timeout_at_idx
       ON public.interpretation_runs (timeout_at) WHERE status IN ('pending', 'running')$$,
   'public.interpretation_runs_active_timeout_at_idx', false),
  ('0006_interpretation-timeouts', 2, 'give the runs in flight a deadline',
   $$SELECT neotoma_ops.stamp_runs_in_flight(1000)::text$$, NULL, true)
ON CONFLICT (migration, position) DO NOTHING;

-- Operator settings of this area: one row, changed with a plain UPDATE (no migration, no restart); the next
-- stamp, heartbeat and sweep use the new values. See docs/interpretation-timeouts.md.
CREATE TABLE IF NOT EXISTS neotoma_ops.interpretation_settings (
  singleton         boolean     NOT NULL DEFAULT true,
  run_timeout       interval    NOT NULL DEFAULT interval '10 minutes',
  sweep_batch_size  integer     NOT NULL DEFAULT 500,
  sweep_max_batches integer     NOT NULL DEFAULT 20,
  updated_at        timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT interpretation_settings_pkey PRIMARY KEY (singleton),
  CONSTRAINT interpretation_settings_single_row CHECK (singleton),
  CONSTRAINT interpretation_settings_run_timeout_between_1_second_and_1_day
    CHECK (run_timeout >= interval '1 second' AND run_timeout <= interval '1 day'),
  CONSTRAINT interpretation_settings_sweep_batch_size_between_1_and_10000
    CHECK (sweep_batch_size BETWEEN 1 AND 10000),
  CONSTRAINT interpretation_settings_sweep_max_batches_between_1_and_1000
    CHECK (sweep_max_batches BETWEEN 1 AND 1000)
);
COMMENT ON TABLE neotoma_ops.interpretation_settings IS
  'Interpretation timeout settings (one row). run_timeout: how long a pending/running run may go without a '
  'heartbeat; sweep_batch_size x sweep_max_batches: most runs one cleanup_stale_interpretations() call fails.';
INSERT INTO neotoma_ops.interpretation_settings (singleton) VALUES (true) ON CONFLICT (singleton) DO NOTHING;

-- Counters for ops_metrics(): transactional, so a sweep that rolls back counts nothing.
CREATE TABLE IF NOT EXISTS neotoma_ops.interpretation_counters (
  counter    text        NOT NULL,
  value      bigint      NOT NULL DEFAULT 0,
  updated_at timestamptz,
  CONSTRAINT interpretation_counters_pkey PRIMARY KEY (counter),
  CONSTRAINT interpretation_counters_value_not_negative CHECK (value >= 0),
  CONSTRAINT interpretation_counters_known_counter
    CHECK (counter IN ('timeouts_total', 'timeouts_pending_total', 'timeouts_running_total', 'quota_refunds_total'))
);
COMMENT ON TABLE neotoma_ops.interpretation_counters IS
  'Monotonic counters of the interpretation sweep: timeouts_total (runs failed with ''Timeout - no heartbeat''), '
  'split by the status they were in (timeouts_pending_total, timeouts_running_total), and quota_refunds_total '
  '(interpretation-quota units given back).';
INSERT INTO neotoma_ops.interpretation_counters (counter)
VALUES ('timeouts_total'), ('timeouts_pending_total'), ('timeouts_running_total'), ('quota_refunds_total')
ON CONFLICT (counter) DO NOTHING;

ALTER TABLE neotoma_ops.interpretation_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE neotoma_ops.interpretation_counters ENABLE ROW LEVEL SECURITY;

DO $policies$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policies WHERE schemaname = 'neotoma_ops'
                 AND tablename = 'interpretation_settings'
                 AND policyname = 'Service role full access - interpretation_settings') THEN
    CREATE POLICY "Service role full access - interpretation_settings" ON neotoma_ops.interpretation_settings
      FOR ALL TO service_role USING (true) WITH CHECK (true);
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policies WHERE schemaname = 'neotoma_ops'
                 AND tablename = 'interpretation_counters'
                 AND policyname = 'Service role full access - interpretation_counters') THEN
    CREATE POLICY "Service role full access - interpretation_counters" ON neotoma_ops.interpretation_counters
      FOR ALL TO service_role USING (true) WITH CHECK (true);
  END IF;
END
$policies$;

-- Not for clients: the service role (the API server, operators) may read both and tune the settings;
-- only the sweep (SECURITY DEFINER) writes the counters.
REVOKE ALL ON TABLE neotoma_ops.interpretation_settings, neotoma_ops.interpretation_counters
  FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT, UPDATE ON TABLE neotoma_ops.interpretation_settings TO service_role;
GRANT SELECT ON TABLE neotoma_ops.interpretation_counters TO service_role;

-- One call of one function every 5 minutes; the function guards itself against overlapping runs.
SELECT cron.schedule('stale-interpretation-cleanup', '*/5 * * * *', $$SELECT public.cleanup_stale_interpretations()$$);

-- Down Migration
SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'stale-interpretation-cleanup';
DELETE FROM neotoma_ops.deferred_steps WHERE migration = '0006_interpretation-timeouts';
DROP TABLE IF EXISTS neotoma_ops.interpretation_counters;
DROP TABLE IF EXISTS neotoma_ops.interpretation_settings;
DROP INDEX IF EXISTS public.interpretation_runs_active_timeout_at_idx;
ALTER TABLE public.interpretation_runs
  DROP COLUMN IF EXISTS heartbeat_at,
  DROP COLUMN IF EXISTS timeout_at;
