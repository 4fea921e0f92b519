-- Up Migration
-- pg_cron runs the project's schedules inside the database. It must be preloaded
-- (shared_preload_libraries = 'pg_cron') and this database must be cron.database_name;
-- on Supabase, enable it under Database → Extensions. `neotoma-ops migrate` checks both first.
CREATE EXTENSION IF NOT EXISTS pg_cron;

-- Down Migration
-- pg_cron may carry other schedules of this database: the extension is left installed.
-- The migrations that register jobs unschedule them in their own down sections.
SELECT 1;
