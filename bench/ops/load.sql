-- Load for the ops_metrics() benchmark: 100,000 users with usage rows (mixed plans, some near or over their
-- limits), 100,000 upload-queue rows across all statuses, 1,000,000 interpretation runs (mostly finished,
-- 1,000 stale). Rows are written with the quota triggers disabled (session_replication_role = replica):
-- the benchmark measures reading, not loading.
SET session_replication_role = replica;
INSERT INTO public.storage_usage (user_id, plan_id, total_bytes, total_sources, interpretation_count_month)
SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid,
       CASE WHEN g % 10 = 0 THEN 'pro' WHEN g % 97 = 0 THEN 'enterprise' ELSE 'free' END,
       (g % 1100) * 1048576::bigint, g % 50, g % 120
  FROM generate_series(1, 100000) AS g;

INSERT INTO public.sources (id, user_id, content_hash, mime_type, storage_url, file_size, storage_status)
SELECT ('10000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid,
       ('00000000-0000-4000-8000-' || lpad(to_hex(g % 100000 + 1), 12, '0'))::uuid,
       encode(sha256(g::text::bytea), 'hex'), 'text/plain', 'x', 1000,
       CASE WHEN g % 100 < 5 THEN 'pending' ELSE 'uploaded' END
  FROM generate_series(1, 100000) AS g;

INSERT INTO public.upload_queue (user_id, source_id, storage_path, content_hash, byte_size, mime_type, status,
                                 retry_count, next_retry_at, locked_by, locked_until, lease_token, completed_at, failed_at)
SELECT s.user_id, s.id, s.user_id || '/' || s.content_hash, s.content_hash, 1000, 'text/plain',
       st.status, CASE WHEN st.status = 'failed' THEN 5 ELSE 1 END,
       now() - interval '1 minute' * (g % 60),
       CASE WHEN st.status = 'in_progress' THEN 'bench' END,
       CASE WHEN st.status = 'in_progress' THEN now() + interval '5 minutes' END,
       CASE WHEN st.status = 'in_progress' THEN gen_random_uuid() END,
       CASE WHEN st.status = 'completed' THEN now() - interval '1 hour' END,
       CASE WHEN st.status = 'failed' THEN now() - interval '1 hour' END
  FROM (SELECT row_number() OVER () AS g, id, user_id, content_hash FROM public.sources) AS s
 CROSS JOIN LATERAL (SELECT CASE WHEN s.g % 100 < 3 THEN 'pending' WHEN s.g % 100 < 4 THEN 'in_progress'
                                 WHEN s.g % 100 < 5 THEN 'failed' ELSE 'completed' END AS status) AS st;

INSERT INTO public.interpretation_runs (user_id, source_id, interpretation_config, status, started_at, completed_at,
                                        created_at, timeout_at)
SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(g % 100000 + 1), 12, '0'))::uuid,
       ('10000000-0000-4000-8000-' || lpad(to_hex(g % 100000 + 1), 12, '0'))::uuid,
       '{}', CASE WHEN g <= 1000 THEN 'running' WHEN g <= 1200 THEN 'pending' ELSE 'completed' END,
       now() - interval '1 day', CASE WHEN g > 1200 THEN now() - interval '1 day' END, now() - interval '1 day',
       CASE WHEN g <= 1000 THEN now() - interval '1 minute' ELSE now() + interval '5 minutes' END
  FROM generate_series(1, 1000000) AS g;
RESET session_replication_role;
VACUUM ANALYZE public.storage_usage, public.sources, public.upload_queue, public.interpretation_runs;
