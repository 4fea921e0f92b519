-- Up Migration
-- Operations settings (one row, changed with a plain UPDATE; no migration, no restart) and the daily
-- purge that keeps cron.job_run_details bounded. public.purge_cron_history() lives in sql/functions/operations/.

CREATE TABLE IF NOT EXISTS neotoma_ops.ops_settings (
  singleton              boolean     NOT NULL DEFAULT true,
  cron_history_retention interval    NOT NULL DEFAULT interval '7 days',
  updated_at             timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT ops_settings_pkey PRIMARY KEY (singleton),
  CONSTRAINT ops_settings_single_row CHECK (singleton),
  CONSTRAINT ops_settings_cron_history_retention_at_least_1_hour
    CHECK (cron_history_retention >= interval '1 hour')
);
COMMENT ON TABLE neotoma_ops.ops_settings IS
  'Operations settings (one row). cron_history_retention: how long pg_cron run history is kept.';
INSERT INTO neotoma_ops.ops_settings (singleton) VALUES (true) ON CONFLICT (singleton) DO NOTHING;

ALTER TABLE neotoma_ops.ops_settings ENABLE ROW LEVEL SECURITY;
DO $policies$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policies WHERE schemaname = 'neotoma_ops'
                 AND tablename = 'ops_settings' AND policyname = 'Service role full access - ops_settings') THEN
    CREATE POLICY "Service role full access - ops_settings" ON neotoma_ops.ops_settings
      FOR ALL TO service_role USING (true) WITH CHECK (true);
  END IF;
END
$policies$;
REVOKE ALL ON TABLE neotoma_ops.ops_settings FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT, UPDATE ON TABLE neotoma_ops.ops_settings TO service_role;

-- Without an index on end_time the purge and the metrics scan the whole history. Only the owner of
-- pg_cron's tables may add one (on Supabase they belong to another role; the history stays small there
-- because this purge runs daily).
DO $index$
BEGIN
  IF pg_catalog.pg_has_role(current_user,
       (SELECT relowner FROM pg_catalog.pg_class WHERE oid = 'cron.job_run_details'::regclass), 'USAGE') THEN
    CREATE INDEX IF NOT EXISTS job_run_details_end_time_idx ON cron.job_run_details (end_time);
    CREATE INDEX IF NOT EXISTS job_run_details_jobid_end_time_idx ON cron.job_run_details (jobid, end_time DESC);
  END IF;
END
$index$;

SELECT cron.schedule('cron-history-purge', '23 3 * * *', $$SELECT public.purge_cron_history()$$);

-- Every table of the project's schemas has row level security enabled, including the migration history
-- table the migration runner creates itself (neotoma_ops.pgmigrations). No policy: only its owner (the role
-- that runs the migrations) reads or writes it; clients have no privilege on it in any case.
ALTER TABLE neotoma_ops.pgmigrations ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON TABLE neotoma_ops.pgmigrations FROM PUBLIC, anon, authenticated;

-- Down Migration
ALTER TABLE neotoma_ops.pgmigrations DISABLE ROW LEVEL SECURITY;

SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'cron-history-purge';
DROP INDEX IF EXISTS cron.job_run_details_end_time_idx;
DROP INDEX IF EXISTS cron.job_run_details_jobid_end_time_idx;
DROP TABLE IF EXISTS neotoma_ops.ops_settings;
