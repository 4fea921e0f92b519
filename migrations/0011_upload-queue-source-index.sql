-- Up Migration
-- Deleting a source deletes its upload jobs (ON DELETE CASCADE), and the cascade looks the jobs up by source_id.
-- The only index on source_id held open jobs, so every deleted source scanned the whole queue, completed history
-- included (and its dead rows): deleting 2,000 sources took a minute over a queue of 600,000 rows
-- (docs/benchmarks.md, "Deleting sources"). This index serves the cascade whatever the job's status.
-- Built CONCURRENTLY by a deferred step: upload_queue may already hold many rows and keep taking writes
-- (until it exists, deletes scan as before).
INSERT INTO neotoma_ops.deferred_steps (migration, position, description, statement, index_name) VALUES
  ('0011_upload-queue-source-index', 1, 'build index upload_queue_source_id_idx',
   $$CREATE INDEX CONCURRENTLY IF NOT EXISTS upload_queue_source_id_idx ON public.upload_queue (source_id)$$,
   'public.upload_queue_source_id_idx')
ON CONFLICT (migration, position) DO NOTHING;

-- Down Migration
DELETE FROM neotoma_ops.deferred_steps WHERE migration = '0011_upload-queue-source-index';
DROP INDEX IF EXISTS public.upload_queue_source_id_idx;
