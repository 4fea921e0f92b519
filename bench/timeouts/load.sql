-- Loads :total interpretation runs of which :stale are stale (pending/running, deadline passed),
-- :active are live (running, deadline ahead) and the rest finished history. :stale users, one source each,
-- each with a storage_usage row (so every timeout also performs a real quota refund).
-- Bulk load without triggers (session_replication_role = replica): deadlines are written directly.
\set ON_ERROR_STOP on
SET session_replication_role = replica;
TRUNCATE public.interpretation_runs, public.sources CASCADE;
DELETE FROM public.storage_usage;

INSERT INTO public.sources (id, user_id, content_hash, mime_type, storage_url, file_size)
SELECT md5('s' || u)::uuid, md5('u' || u)::uuid, encode(sha256(u::text::bytea), 'hex'), 'text/plain', 'bench', 10
  FROM generate_series(1, :stale) AS u;
-- the period opened a day ago (not at today's 00:00 UTC), so runs created an hour ago always fall in it and
-- every timeout really refunds, whatever the time of day the benchmark runs
INSERT INTO public.storage_usage (user_id, total_bytes, total_sources, interpretation_count_month, billing_period_start)
SELECT md5('u' || u)::uuid, 10, 1, 50, now() - interval '1 day' FROM generate_series(1, :stale) AS u;

-- i = 1 .. :stale stale, next :active live, the rest finished; runs spread over the users
INSERT INTO public.interpretation_runs
  (user_id, source_id, interpretation_config, status, started_at, completed_at, created_at, timeout_at, heartbeat_at)
SELECT md5('u' || (1 + i % :stale))::uuid, md5('s' || (1 + i % :stale))::uuid, '{"model":"bench"}',
       CASE WHEN i <= :stale THEN (CASE WHEN i % 4 = 0 THEN 'pending' ELSE 'running' END)
            WHEN i <= :stale + :active THEN 'running'
            ELSE (CASE WHEN i % 10 = 0 THEN 'failed' ELSE 'completed' END) END,
       now() - interval '1 hour',
       CASE WHEN i > :stale + :active THEN now() - interval '50 minutes' END,
       now() - interval '1 hour',
       CASE WHEN i <= :stale THEN now() - interval '1 second' * i
            WHEN i <= :stale + :active THEN now() + interval '10 minutes'
            ELSE now() - interval '50 minutes' END,
       now() - interval '55 minutes'
  FROM generate_series(1, :total) AS i;
RESET session_replication_role;
VACUUM ANALYZE public.interpretation_runs;
VACUUM ANALYZE public.storage_usage;
