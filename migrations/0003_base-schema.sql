-- Up Migration
-- Neotoma v0.2.0 base tables, which v0.3.0 extends. On a database that already runs v0.2.0 the
-- tables exist and are left as they are; here they are created only where absent.

DO $base$
BEGIN
  IF to_regclass('public.sources') IS NULL THEN
    CREATE TABLE public.sources (
      id                uuid        NOT NULL DEFAULT gen_random_uuid(),
      user_id           uuid        NOT NULL,
      content_hash      text        NOT NULL,
      mime_type         text        NOT NULL,
      storage_url       text        NOT NULL,
      file_size         bigint      NOT NULL,
      original_filename text,
      provenance        jsonb       NOT NULL DEFAULT '{}'::jsonb,
      created_at        timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT sources_pkey PRIMARY KEY (id),
      CONSTRAINT sources_user_id_content_hash_key UNIQUE (user_id, content_hash),
      -- constraint names say which field is wrong and how
      CONSTRAINT sources_content_hash_sha256_lowercase_hex CHECK (content_hash ~ '^[0-9a-f]{64}$'),
      CONSTRAINT sources_file_size_not_negative CHECK (file_size >= 0)
    );
    COMMENT ON TABLE public.sources IS 'Ingested files, deduplicated per user by SHA-256 content hash.';
    COMMENT ON COLUMN public.sources.storage_url IS 'Storage key {user_id}/{content_hash} in bucket sources.';
    INSERT INTO neotoma_ops.bootstrap_objects VALUES ('table', 'public.sources');
  END IF;

  IF to_regclass('public.interpretation_runs') IS NULL THEN
    CREATE TABLE public.interpretation_runs (
      id                    uuid        NOT NULL DEFAULT gen_random_uuid(),
      user_id               uuid        NOT NULL,
      source_id             uuid        NOT NULL,
      interpretation_config jsonb       NOT NULL,
      status                text        NOT NULL,
      started_at            timestamptz DEFAULT now(),
      completed_at          timestamptz,
      error_message         text,
      observations_created  integer     DEFAULT 0,
      unknown_fields_count  integer     DEFAULT 0,
      created_at            timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT interpretation_runs_pkey PRIMARY KEY (id),
      CONSTRAINT interpretation_runs_source_id_fkey FOREIGN KEY (source_id)
        REFERENCES public.sources (id) ON DELETE CASCADE,
      CONSTRAINT interpretation_runs_status_check
        CHECK (status IN ('pending', 'running', 'completed', 'failed'))
    );
    COMMENT ON TABLE public.interpretation_runs IS 'One AI interpretation of a source.';
    INSERT INTO neotoma_ops.bootstrap_objects VALUES ('table', 'public.interpretation_runs');
  END IF;
END
$base$;

CREATE INDEX IF NOT EXISTS sources_user_id_created_at_idx ON public.sources (user_id, created_at DESC);
CREATE INDEX IF NOT EXISTS interpretation_runs_source_id_idx ON public.interpretation_runs (source_id);
CREATE INDEX IF NOT EXISTS interpretation_runs_user_id_created_at_idx
  ON public.interpretation_runs (user_id, created_at DESC);

ALTER TABLE public.sources ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.interpretation_runs ENABLE ROW LEVEL SECURITY;

DO $policies$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policies WHERE schemaname = 'public' AND tablename = 'sources'
                 AND policyname = 'Service role full access - sources') THEN
    CREATE POLICY "Service role full access - sources" ON public.sources
      FOR ALL TO service_role USING (true) WITH CHECK (true);
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policies WHERE schemaname = 'public' AND tablename = 'sources'
                 AND policyname = 'Users read own sources') THEN
    CREATE POLICY "Users read own sources" ON public.sources
      FOR SELECT TO authenticated USING (user_id = (SELECT auth.uid()));
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policies WHERE schemaname = 'public' AND tablename = 'interpretation_runs'
                 AND policyname = 'Service role full access - interpretation_runs') THEN
    CREATE POLICY "Service role full access - interpretation_runs" ON public.interpretation_runs
      FOR ALL TO service_role USING (true) WITH CHECK (true);
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policies WHERE schemaname = 'public' AND tablename = 'interpretation_runs'
                 AND policyname = 'Users read own interpretation_runs') THEN
    CREATE POLICY "Users read own interpretation_runs" ON public.interpretation_runs
      FOR SELECT TO authenticated USING (user_id = (SELECT auth.uid()));
  END IF;
END
$policies$;

-- Clients read their own rows; only the service role (the API server) writes.
REVOKE ALL ON public.sources, public.interpretation_runs FROM PUBLIC, anon, authenticated;
GRANT SELECT ON public.sources, public.interpretation_runs TO authenticated;
GRANT SELECT, INSERT, UPDATE, DELETE ON public.sources, public.interpretation_runs TO service_role;

-- Down Migration
-- Drops the base tables only where this migration created them (never on an existing v0.2.0 database).
DO $down$
BEGIN
  IF EXISTS (SELECT 1 FROM neotoma_ops.bootstrap_objects WHERE object_kind = 'table'
             AND object_name = 'public.interpretation_runs') THEN
    DROP TABLE IF EXISTS public.interpretation_runs;
  END IF;
  IF EXISTS (SELECT 1 FROM neotoma_ops.bootstrap_objects WHERE object_kind = 'table'
             AND object_name = 'public.sources') THEN
    DROP TABLE IF EXISTS public.sources;
  END IF;
  DELETE FROM neotoma_ops.bootstrap_objects
   WHERE object_kind = 'table' AND object_name IN ('public.sources', 'public.interpretation_runs');
END
$down$;
