-- Up Migration
-- The largest object Storage accepts, where only an operator knows it: Supabase's global upload limit (50 MB on
-- the free plan; Dashboard → Storage → Settings) is not in the database. A file over it passes the plan's per-file
-- limit and then fails in Storage for good; with the limit here (and the bucket's own file_size_limit, read from
-- storage.buckets), the quota check refuses it before it is uploaded or queued (neotoma_ops.storage_upload_limit()).
CREATE TABLE neotoma_ops.storage_settings (
  singleton          boolean     NOT NULL DEFAULT true,
  upload_limit_bytes bigint,
  updated_at         timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT storage_settings_pkey PRIMARY KEY (singleton),
  CONSTRAINT storage_settings_one_row CHECK (singleton),
  CONSTRAINT storage_settings_upload_limit_bytes_positive CHECK (upload_limit_bytes > 0)
);
COMMENT ON TABLE neotoma_ops.storage_settings IS
  'upload_limit_bytes: the storage platform''s global upload limit (Supabase: Dashboard → Storage → Settings), NULL = unknown.';
INSERT INTO neotoma_ops.storage_settings DEFAULT VALUES;

ALTER TABLE neotoma_ops.storage_settings ENABLE ROW LEVEL SECURITY;
CREATE POLICY "Service role full access - storage_settings" ON neotoma_ops.storage_settings
  FOR ALL TO service_role USING (true) WITH CHECK (true);
REVOKE ALL ON TABLE neotoma_ops.storage_settings FROM PUBLIC, anon, authenticated, service_role;
GRANT SELECT, UPDATE ON TABLE neotoma_ops.storage_settings TO service_role;

-- Down Migration
DROP TABLE neotoma_ops.storage_settings;
