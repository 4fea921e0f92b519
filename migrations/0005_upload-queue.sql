-- Up Migration
-- Upload retry queue (docs/upload-queue.md). A storage upload that failed during ingest leaves its source row
-- `storage_status = 'pending'` and one job in public.upload_queue; the bytes wait in
-- public.upload_queue_payloads (not on any worker's disk) until a worker stores them. Functions that drive
-- the queue live in sql/functions/upload-queue/; the state machine is documented in docs/upload-queue.md.

-- 1. sources.storage_status ------------------------------------------------------------------------------
-- A constant default is stored in the catalog (no table rewrite); the CHECK is added NOT VALID (no scan under
-- the table lock: every existing row holds the default) and checked by a deferred step.
ALTER TABLE public.sources
  ADD COLUMN IF NOT EXISTS storage_status text NOT NULL DEFAULT 'uploaded';
ALTER TABLE public.sources
  ADD CONSTRAINT sources_storage_status_check CHECK (storage_status IN ('pending', 'uploaded', 'failed')) NOT VALID;
COMMENT ON COLUMN public.sources.storage_status IS
  'pending: bytes queued in upload_queue; uploaded: stored at storage_url; failed: retries exhausted (see upload_queue).';
-- Operators look for sources not yet stored; uploaded rows (the vast majority) stay out of this index. Built
-- CONCURRENTLY by a deferred step: sources may already hold millions of rows and keep taking writes.
INSERT INTO neotoma_ops.deferred_steps (migration, position, description, statement, index_name) VALUES
  ('0005_upload-queue', 1, 'check existing sources rows against sources_storage_status_check',
   $$SELECT neotoma_ops.validate_constraint('public.sources', 'sources_storage_status_check')$$, NULL),
  ('0005_upload-queue', 2, 'build index sources_storage_status_not_uploaded_idx',
   $$CREATE INDEX CONCURRENTLY IF NOT EXISTS sources_storage_status_not_uploaded_idx
       ON public.sources (storage_status, user_id) WHERE storage_status <> 'uploaded'$$,
   'public.sources_storage_status_not_uploaded_idx')
ON CONFLICT (migration, position) DO NOTHING;

-- 2. the queue -----------------------------------------------------------------------------------------
CREATE TABLE public.upload_queue (
  id            uuid        NOT NULL DEFAULT gen_random_uuid(),
  user_id       uuid        NOT NULL,
  source_id     uuid        NOT NULL,
  bucket        text        NOT NULL DEFAULT 'sources',
  storage_path  text        NOT NULL,
  content_hash  text        NOT NULL,
  byte_size     bigint      NOT NULL,
  mime_type     text        NOT NULL,
  status        text        NOT NULL DEFAULT 'pending',
  retry_count   integer     NOT NULL DEFAULT 0,
  max_retries   integer     NOT NULL DEFAULT 5,
  next_retry_at timestamptz NOT NULL DEFAULT now(),
  locked_by     text,
  locked_until  timestamptz,
  lease_token   uuid,
  error_message text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  completed_at  timestamptz,
  failed_at     timestamptz,
  CONSTRAINT upload_queue_pkey PRIMARY KEY (id),
  CONSTRAINT upload_queue_source_id_fkey FOREIGN KEY (source_id) REFERENCES public.sources (id) ON DELETE CASCADE,
  CONSTRAINT upload_queue_status_check CHECK (status IN ('pending', 'in_progress', 'completed', 'failed')),
  CONSTRAINT upload_queue_content_hash_sha256_lowercase_hex CHECK (content_hash ~ '^[0-9a-f]{64}$'),
  CONSTRAINT upload_queue_byte_size_not_negative CHECK (byte_size >= 0),
  CONSTRAINT upload_queue_retry_count_not_negative CHECK (retry_count >= 0),
  -- upload_retry_delay() is defined for retries 1..5
  CONSTRAINT upload_queue_max_retries_between_1_and_5 CHECK (max_retries BETWEEN 1 AND 5),
  CONSTRAINT upload_queue_retry_count_within_max CHECK (retry_count <= max_retries),
  -- a job in progress always has a complete lease; a pending job never has one
  CONSTRAINT upload_queue_in_progress_has_lease CHECK (
    status <> 'in_progress' OR (lease_token IS NOT NULL AND locked_by IS NOT NULL AND locked_until IS NOT NULL)),
  CONSTRAINT upload_queue_pending_has_no_lease CHECK (
    status <> 'pending' OR (lease_token IS NULL AND locked_until IS NULL)),
  CONSTRAINT upload_queue_completed_has_completed_at CHECK (status <> 'completed' OR completed_at IS NOT NULL)
) WITH (
  -- Queue rows are updated 3-6 times in their life: leave room for HOT updates and vacuum early and often
  -- (the defaults wait for 20 % of the table to be dead, which on a queue means a bloated claim index).
  fillfactor = 70,
  autovacuum_vacuum_scale_factor = 0.01,
  autovacuum_vacuum_threshold = 100,
  autovacuum_vacuum_insert_scale_factor = 0.05,
  autovacuum_analyze_scale_factor = 0.02,
  autovacuum_analyze_threshold = 100,
  autovacuum_vacuum_cost_delay = 1
);
COMMENT ON TABLE public.upload_queue IS
  'Storage uploads to retry (docs/upload-queue.md). Driven only through enqueue_upload/claim_upload_jobs/... ; bytes are in upload_queue_payloads.';
COMMENT ON COLUMN public.upload_queue.retry_count IS 'Retries attempted so far that did not succeed (an expired lease counts).';
COMMENT ON COLUMN public.upload_queue.lease_token IS 'Fencing token of the current claim; every call after the claim must present it.';

-- At most one open job per source (pending, in progress, or failed and holding the bytes for a requeue).
CREATE UNIQUE INDEX upload_queue_one_open_job_per_source
  ON public.upload_queue (source_id) WHERE status IN ('pending', 'in_progress', 'failed');
-- The claim query: pending jobs in claim order (oldest due first).
CREATE INDEX upload_queue_claim_idx
  ON public.upload_queue (next_retry_at, id) WHERE status = 'pending';
-- process_upload_queue(): expired leases, and completed rows past retention.
CREATE INDEX upload_queue_lease_expiry_idx
  ON public.upload_queue (locked_until) WHERE status = 'in_progress';
CREATE INDEX upload_queue_completed_at_idx
  ON public.upload_queue (completed_at) WHERE status = 'completed';
-- "Users read own upload_queue" and per-user support queries.
CREATE INDEX upload_queue_user_id_created_at_idx ON public.upload_queue (user_id, created_at DESC);

-- 3. the bytes -----------------------------------------------------------------------------------------
CREATE TABLE public.upload_queue_payloads (
  job_id     uuid        NOT NULL,
  content    bytea       NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT upload_queue_payloads_pkey PRIMARY KEY (job_id),
  CONSTRAINT upload_queue_payloads_job_id_fkey FOREIGN KEY (job_id) REFERENCES public.upload_queue (id) ON DELETE CASCADE
) WITH (
  autovacuum_vacuum_scale_factor = 0.01,
  autovacuum_vacuum_threshold = 50,
  toast.autovacuum_vacuum_scale_factor = 0.01,
  toast.autovacuum_vacuum_threshold = 50
);
-- Uploaded files are mostly compressed already (PDF, images, archives): store them out of line without
-- another compression pass, which also lets a reader fetch slices without decompressing the whole value.
ALTER TABLE public.upload_queue_payloads ALTER COLUMN content SET STORAGE EXTERNAL;
COMMENT ON TABLE public.upload_queue_payloads IS
  'Bytes of queued uploads, one row per job; deleted when the job completes. Service role only; read through upload_job_content().';

-- 4. settings and counters (internal) ---------------------------------------------------------------------
CREATE TABLE neotoma_ops.upload_queue_settings (
  singleton           boolean  NOT NULL DEFAULT true,
  completed_retention interval NOT NULL DEFAULT '7 days',
  batch_size          integer  NOT NULL DEFAULT 500,
  payload_bytes_cap   bigint   NOT NULL DEFAULT 10737418240,
  CONSTRAINT upload_queue_settings_pkey PRIMARY KEY (singleton),
  CONSTRAINT upload_queue_settings_one_row CHECK (singleton),
  CONSTRAINT upload_queue_settings_completed_retention_positive CHECK (completed_retention > interval '0'),
  CONSTRAINT upload_queue_settings_batch_size_between_1_and_10000 CHECK (batch_size BETWEEN 1 AND 10000),
  CONSTRAINT upload_queue_settings_payload_bytes_cap_positive CHECK (payload_bytes_cap > 0)
);
COMMENT ON TABLE neotoma_ops.upload_queue_settings IS
  'process_upload_queue(): how long completed jobs are kept, and how many rows one run handles per step. payload_bytes_cap: the outage budget, most payload bytes the queue holds (default 10 GiB).';
INSERT INTO neotoma_ops.upload_queue_settings DEFAULT VALUES;

-- The outage budget: bytes of payloads the queue holds now, in one row that every write of
-- upload_queue_payloads adjusts (sql/triggers/upload-queue/upload_queue_payloads_count_*.sql) and that a new
-- payload may not take past upload_queue_settings.payload_bytes_cap (PT503 UPLOAD_QUEUE_FULL, docs/errors.md).
-- Created by the first write (born true: the sum of the payloads then), so writers running during the upgrade
-- are counted. Refusals are counted by a sequence, which the rollback of the refused statement does not undo.
CREATE TABLE neotoma_ops.upload_queue_payload_bytes (
  singleton  boolean     NOT NULL DEFAULT true,
  bytes      bigint      NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT upload_queue_payload_bytes_pkey PRIMARY KEY (singleton),
  CONSTRAINT upload_queue_payload_bytes_one_row CHECK (singleton)
);
COMMENT ON TABLE neotoma_ops.upload_queue_payload_bytes IS
  'Payload bytes the upload queue holds now (= SUM(octet_length(content)) of upload_queue_payloads), against payload_bytes_cap.';
CREATE SEQUENCE neotoma_ops.upload_queue_full_rejections AS bigint;

-- Monotonic event counters for ops_metrics(). Sharded by backend so concurrent workers do not queue on one
-- row; transactional, so a rolled-back call counts nothing. Read with neotoma_ops.upload_queue_counter_totals().
CREATE TABLE neotoma_ops.upload_queue_counters (
  counter text     NOT NULL,
  shard   smallint NOT NULL,
  value   bigint   NOT NULL DEFAULT 0,
  CONSTRAINT upload_queue_counters_pkey PRIMARY KEY (counter, shard),
  CONSTRAINT upload_queue_counters_known CHECK (counter IN (
    'upload_enqueued_total', 'upload_retries_total', 'upload_retry_failures_total',
    'upload_lease_expirations_total', 'upload_terminal_failures_total', 'upload_completed_total',
    'upload_requeued_total', 'upload_pruned_total')),
  CONSTRAINT upload_queue_counters_value_not_negative CHECK (value >= 0)
);
COMMENT ON TABLE neotoma_ops.upload_queue_counters IS 'Upload queue event counters (sum over shards).';

-- 5. security ------------------------------------------------------------------------------------------
ALTER TABLE public.upload_queue ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.upload_queue_payloads ENABLE ROW LEVEL SECURITY;
ALTER TABLE neotoma_ops.upload_queue_settings ENABLE ROW LEVEL SECURITY;
ALTER TABLE neotoma_ops.upload_queue_counters ENABLE ROW LEVEL SECURITY;
ALTER TABLE neotoma_ops.upload_queue_payload_bytes ENABLE ROW LEVEL SECURITY;

CREATE POLICY "Service role full access - upload_queue" ON public.upload_queue
  FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY "Users read own upload_queue" ON public.upload_queue
  FOR SELECT TO authenticated USING (user_id = (SELECT auth.uid()));
CREATE POLICY "Service role full access - upload_queue_payloads" ON public.upload_queue_payloads
  FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY "Service role full access - upload_queue_settings" ON neotoma_ops.upload_queue_settings
  FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY "Service role full access - upload_queue_counters" ON neotoma_ops.upload_queue_counters
  FOR ALL TO service_role USING (true) WITH CHECK (true);
CREATE POLICY "Service role full access - upload_queue_payload_bytes" ON neotoma_ops.upload_queue_payload_bytes
  FOR ALL TO service_role USING (true) WITH CHECK (true);

REVOKE ALL ON TABLE public.upload_queue, public.upload_queue_payloads, neotoma_ops.upload_queue_settings,
  neotoma_ops.upload_queue_counters, neotoma_ops.upload_queue_payload_bytes FROM PUBLIC, anon, authenticated, service_role;
REVOKE ALL ON SEQUENCE neotoma_ops.upload_queue_full_rejections FROM PUBLIC, anon, authenticated, service_role;
-- Users see the status of their own jobs; lease internals (token, holder, expiry) and the bytes stay hidden.
-- Clients select named columns (a `SELECT *` needs the hidden ones too and is refused).
GRANT SELECT (id, user_id, source_id, bucket, storage_path, content_hash, byte_size, mime_type, status,
              retry_count, max_retries, next_retry_at, error_message, created_at, updated_at, completed_at, failed_at)
  ON public.upload_queue TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.upload_queue, public.upload_queue_payloads TO service_role;
GRANT SELECT, UPDATE ON neotoma_ops.upload_queue_settings TO service_role;
GRANT SELECT, INSERT, UPDATE ON neotoma_ops.upload_queue_counters TO service_role;
GRANT SELECT, INSERT, UPDATE ON neotoma_ops.upload_queue_payload_bytes TO service_role;
GRANT SELECT ON SEQUENCE neotoma_ops.upload_queue_full_rejections TO service_role;

-- 6. schedule ------------------------------------------------------------------------------------------
SELECT cron.schedule('upload-queue-processor', '*/5 * * * *', $$SELECT public.process_upload_queue()$$);

-- Failed jobs wait for an operator: ops_metrics() counts them and `requeue --all-failed --since` lists
-- them by failure time. A partial index keeps both proportional to the failed jobs alone.
CREATE INDEX IF NOT EXISTS upload_queue_failed_at_idx ON public.upload_queue (failed_at) WHERE status = 'failed';

-- Down Migration
DROP INDEX IF EXISTS public.upload_queue_failed_at_idx;

SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'upload-queue-processor';
DELETE FROM neotoma_ops.deferred_steps WHERE migration = '0005_upload-queue';
DROP TABLE IF EXISTS neotoma_ops.upload_queue_payload_bytes;
DROP SEQUENCE IF EXISTS neotoma_ops.upload_queue_full_rejections;
DROP TABLE IF EXISTS neotoma_ops.upload_queue_counters;
DROP TABLE IF EXISTS neotoma_ops.upload_queue_settings;
DROP TABLE IF EXISTS public.upload_queue_payloads;
DROP TABLE IF EXISTS public.upload_queue;
DROP INDEX IF EXISTS public.sources_storage_status_not_uploaded_idx;
ALTER TABLE public.sources DROP CONSTRAINT IF EXISTS sources_storage_status_check;
ALTER TABLE public.sources DROP COLUMN IF EXISTS storage_status;
