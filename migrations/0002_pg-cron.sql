-- Up Migration
-- pg_cron runs the project's schedules inside the database. It must be preloaded
-- (shared_preload_libraries = 'pg_cron') and this database must be cron.database_name;
-- on Supabase, enable it under Database → Extensions. `neotoma-ops migrate` checks both first.
-- Created here only where absent (and then recorded, so that a full rollback removes it again).
DO $cron$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') THEN
    CREATE EXTENSION pg_cron;
    INSERT INTO neotoma_ops.bootstrap_objects VALUES ('extension', 'pg_cron');
  END IF;
END
$cron$;

-- Down Migration
-- The migrations that register jobs unschedule them in their own down sections. The extension is removed only
-- where this migration created it and no schedule of anyone else is left in it.
DO $cron$
BEGIN
  IF EXISTS (SELECT 1 FROM neotoma_ops.bootstrap_objects WHERE object_kind = 'extension' AND object_name = 'pg_cron') THEN
    IF EXISTS (SELECT 1 FROM cron.job) THEN
      RAISE NOTICE 'pg_cron is kept: cron.job still holds % other schedule(s)', (SELECT count(*) FROM cron.job);
    ELSE
      DROP EXTENSION IF EXISTS pg_cron;
    END IF;
    DELETE FROM neotoma_ops.bootstrap_objects WHERE object_kind = 'extension' AND object_name = 'pg_cron';
  END IF;
END
$cron$;
