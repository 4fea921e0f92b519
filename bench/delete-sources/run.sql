-- Deleting sources over a long upload-queue history, with and without the index on upload_queue.source_id
-- (migration 0011), side by side in one run on the same data.
--   psql -X -v history=600000 -v deleted=2000 "$DATABASE_URL" -f bench/delete-sources/run.sql
-- history: completed jobs of other users' sources kept in the queue (its retention window); deleted: sources of
-- one user, each with one completed job, deleted in one statement (an account deletion). The data is committed and
-- vacuumed first (as a live queue's would be), each variant is measured in a transaction that is rolled back, and
-- the data is removed at the end. Run it on a throwaway database migrated by neotoma-ops, as a role that may drop
-- the index (inside the measuring transaction only).
\set ON_ERROR_STOP on
\if :{?history} \else \set history 600000 \endif
\if :{?deleted} \else \set deleted 2000 \endif
SET client_min_messages = warning;
INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
SELECT ('00000000-0000-4000-8000-' || lpad((g % 100)::text, 12, '0'))::uuid,
       encode(sha256(convert_to('h' || g, 'UTF8')), 'hex'), 'text/plain', 'bench:delete-sources', 1
  FROM generate_series(1, :history) AS g;
INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
SELECT 'ffffffff-0000-4000-8000-000000000000', encode(sha256(convert_to('d' || g, 'UTF8')), 'hex'), 'text/plain',
       'bench:delete-sources', 1
  FROM generate_series(1, :deleted) AS g;
INSERT INTO public.upload_queue (user_id, source_id, storage_path, content_hash, byte_size, mime_type, status, completed_at)
SELECT s.user_id, s.id, 'p', s.content_hash, 1, 'text/plain', 'completed', now()
  FROM public.sources AS s WHERE s.storage_url = 'bench:delete-sources';
VACUUM ANALYZE public.sources;
VACUUM ANALYZE public.upload_queue;

\timing on
BEGIN;
\echo 'with upload_queue_source_id_idx:'
DELETE FROM public.sources WHERE user_id = 'ffffffff-0000-4000-8000-000000000000';
ROLLBACK;
BEGIN;
DROP INDEX public.upload_queue_source_id_idx;
\echo 'without it (v0.3.0 before 0011):'
DELETE FROM public.sources WHERE user_id = 'ffffffff-0000-4000-8000-000000000000';
ROLLBACK;
\timing off
DELETE FROM public.sources WHERE storage_url = 'bench:delete-sources';
