-- Up Migration
-- Neotoma v0.2.0's tables sources and interpretation_runs, which v0.3.0 extends.
--
-- 1. Where they are absent (a new install), they are created exactly as Neotoma v0.2.0 creates them
--    (its migrations 20251231000001_add_sources_table and 20251231000003_add_interpretation_runs_table):
--    same columns and nullability, foreign key without cascade, Neotoma's own index and policy names. So a new
--    install and an upgraded v0.2.0 database are the same database from here on.
-- 2. On every database, what v0.3.0 relies on is added, each change listed with its reason in docs/upgrade.md:
--    integrity checks on sources (added NOT VALID under a brief lock, so new rows are checked at once; existing
--    rows are checked afterwards by a deferred step that does not block writers), row level security, a
--    read-own policy only where no policy with the same meaning exists, and grants narrowed to what the design
--    needs. Everything this migration changes on an existing object is recorded (neotoma_ops.bootstrap_objects,
--    neotoma_ops.changed_privileges), so the down migration puts back exactly that.

DO $base$
BEGIN
  IF to_regclass('public.sources') IS NULL THEN
    CREATE TABLE public.sources (
      id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      user_id           uuid NOT NULL,
      content_hash      text NOT NULL,
      mime_type         text NOT NULL,
      storage_url       text NOT NULL,
      file_size         bigint NOT NULL,
      original_filename text,
      provenance        jsonb NOT NULL DEFAULT '{}',
      created_at        timestamptz DEFAULT now(),
      UNIQUE (user_id, content_hash)
    );
    CREATE INDEX idx_sources_user ON public.sources (user_id);
    CREATE INDEX idx_sources_hash ON public.sources (content_hash);
    CREATE INDEX idx_sources_created_at ON public.sources (created_at DESC);
    ALTER TABLE public.sources ENABLE ROW LEVEL SECURITY;
    CREATE POLICY "Service role full access - sources" ON public.sources
      FOR ALL TO service_role USING (true) WITH CHECK (true);
    CREATE POLICY "Users read own sources" ON public.sources
      FOR SELECT TO authenticated USING (auth.uid() = user_id);
    COMMENT ON TABLE public.sources IS
      'Content-addressed raw storage for sources-first ingestion. SHA-256 hash ensures deduplication per user.';
    INSERT INTO neotoma_ops.bootstrap_objects VALUES ('table', 'public.sources');
  END IF;

  IF to_regclass('public.interpretation_runs') IS NULL THEN
    CREATE TABLE public.interpretation_runs (
      id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
      user_id               uuid NOT NULL,
      source_id             uuid NOT NULL REFERENCES public.sources (id),
      interpretation_config jsonb NOT NULL,
      status                text NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed')),
      started_at            timestamptz DEFAULT now(),
      completed_at          timestamptz,
      error_message         text,
      observations_created  integer DEFAULT 0,
      unknown_fields_count  integer DEFAULT 0,
      created_at            timestamptz DEFAULT now()
    );
    CREATE INDEX idx_interpretation_runs_user ON public.interpretation_runs (user_id);
    CREATE INDEX idx_interpretation_runs_source ON public.interpretation_runs (source_id);
    CREATE INDEX idx_interpretation_runs_status ON public.interpretation_runs (status);
    CREATE INDEX idx_interpretation_runs_created_at ON public.interpretation_runs (created_at DESC);
    ALTER TABLE public.interpretation_runs ENABLE ROW LEVEL SECURITY;
    CREATE POLICY "Service role full access - interpretation_runs" ON public.interpretation_runs
      FOR ALL TO service_role USING (true) WITH CHECK (true);
    CREATE POLICY "Users read own interpretation runs" ON public.interpretation_runs
      FOR SELECT TO authenticated USING (auth.uid() = user_id);
    COMMENT ON TABLE public.interpretation_runs IS
      'Versioned interpretation attempts with config logging for auditability';
    INSERT INTO neotoma_ops.bootstrap_objects VALUES ('table', 'public.interpretation_runs');
  END IF;
END
$base$;

-- Privileges this migration revokes from or grants on an existing table, kept so that the down migration puts
-- back exactly what was there.
CREATE TABLE IF NOT EXISTS neotoma_ops.changed_privileges (
  relation   text        NOT NULL,
  grantee    text        NOT NULL,
  privilege  text        NOT NULL,
  change     text        NOT NULL CHECK (change IN ('revoked', 'granted')),
  changed_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (relation, grantee, privilege)
);
ALTER TABLE neotoma_ops.changed_privileges ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON TABLE neotoma_ops.changed_privileges FROM PUBLIC;

DO $upgrade$
DECLARE
  t       text;
  v_rel   regclass;
  r       record;
BEGIN
  FOREACH t IN ARRAY ARRAY['public.sources', 'public.interpretation_runs'] LOOP
    v_rel := t::regclass;

    -- Row level security (Neotoma enables it already; a database where it was turned off gets it back).
    IF NOT (SELECT relrowsecurity FROM pg_catalog.pg_class WHERE oid = v_rel) THEN
      EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', v_rel);
      INSERT INTO neotoma_ops.bootstrap_objects VALUES ('row level security', t);
    END IF;

    -- Users read their own rows: added only when no permissive policy for authenticated (or everyone) already
    -- allows SELECT with the same meaning, whatever its name: user_id = auth.uid(), either side of the "=",
    -- with or without Supabase's recommended (SELECT auth.uid()) wrapper.
    IF NOT EXISTS (
      SELECT 1 FROM pg_catalog.pg_policy p
       WHERE p.polrelid = v_rel AND p.polpermissive AND p.polcmd IN ('r', '*')
         AND (p.polroles && ARRAY['authenticated'::regrole::oid, 0::oid])
         AND regexp_replace(
               regexp_replace(lower(pg_catalog.pg_get_expr(p.polqual, p.polrelid)),
                              '\(\s*select\s+auth\.uid\(\)(\s+as\s+uid)?\s*\)', 'auth.uid()', 'g'),
               '[\s()]', '', 'g') IN ('user_id=auth.uid', 'auth.uid=user_id')
    ) THEN
      EXECUTE format('CREATE POLICY %I ON %s FOR SELECT TO authenticated USING (user_id = (SELECT auth.uid()))',
                     'Users read own ' || split_part(t, '.', 2), v_rel);
      INSERT INTO neotoma_ops.bootstrap_objects VALUES ('policy', t || ':Users read own ' || split_part(t, '.', 2));
    END IF;

    -- Clients read (authenticated, own rows through RLS) and never write; anon reads nothing; the service
    -- role writes rows but gets no TRUNCATE (it bypasses the row triggers that keep usage counters true),
    -- REFERENCES, TRIGGER or (PostgreSQL 17) MAINTAIN. Supabase's default privileges grant all of these; what
    -- is revoked is recorded. Every privilege the server knows is read from the ACL, so none is missed.
    -- Both loops are ordered: GRANT appends ACL items in the order it runs, and a plan must not decide it.
    FOR r IN
      SELECT a.grantee::regrole::text AS grantee, a.privilege_type AS privilege
        FROM pg_catalog.pg_class c, LATERAL pg_catalog.aclexplode(c.relacl) a
       WHERE c.oid = v_rel
         AND a.grantee IN (SELECT oid FROM pg_catalog.pg_roles WHERE rolname IN ('anon', 'authenticated', 'service_role'))
         AND NOT (a.grantee = 'authenticated'::regrole AND a.privilege_type = 'SELECT')
         AND NOT (a.grantee = 'service_role'::regrole AND a.privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE'))
      UNION
      SELECT 'PUBLIC', a.privilege_type
        FROM pg_catalog.pg_class c, LATERAL pg_catalog.aclexplode(c.relacl) a
       WHERE c.oid = v_rel AND a.grantee = 0
      ORDER BY 1, 2
    LOOP
      EXECUTE format('REVOKE %s ON TABLE %s FROM %s', r.privilege, v_rel, r.grantee);
      INSERT INTO neotoma_ops.changed_privileges (relation, grantee, privilege, change)
      VALUES (t, r.grantee, r.privilege, 'revoked') ON CONFLICT DO NOTHING;
    END LOOP;
    -- what the design needs: authenticated reads (own rows), the service role reads and writes rows
    FOR r IN
      SELECT w.grantee, w.privilege
        FROM (VALUES (1, 'authenticated', 'SELECT'), (2, 'service_role', 'SELECT'), (3, 'service_role', 'INSERT'),
                     (4, 'service_role', 'UPDATE'), (5, 'service_role', 'DELETE')) AS w (position, grantee, privilege)
       WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c, LATERAL pg_catalog.aclexplode(c.relacl) a
                          WHERE c.oid = v_rel AND a.grantee = w.grantee::regrole AND a.privilege_type = w.privilege)
       ORDER BY w.position
    LOOP
      EXECUTE format('GRANT %s ON TABLE %s TO %I', r.privilege, v_rel, r.grantee);
      INSERT INTO neotoma_ops.changed_privileges (relation, grantee, privilege, change)
      VALUES (t, r.grantee, r.privilege, 'granted') ON CONFLICT DO NOTHING;
    END LOOP;
  END LOOP;
END
$upgrade$;

-- Integrity checks (docs/errors.md: 23514 naming the field). NOT VALID: new and updated rows are checked from
-- this commit on, without a scan under the table lock; the deferred steps below check the existing rows.
DO $checks$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = 'public.sources'::regclass
                 AND conname = 'sources_content_hash_sha256_lowercase_hex') THEN
    ALTER TABLE public.sources ADD CONSTRAINT sources_content_hash_sha256_lowercase_hex
      CHECK (content_hash ~ '^[0-9a-f]{64}$') NOT VALID;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint WHERE conrelid = 'public.sources'::regclass
                 AND conname = 'sources_file_size_not_negative') THEN
    ALTER TABLE public.sources ADD CONSTRAINT sources_file_size_not_negative CHECK (file_size >= 0) NOT VALID;
  END IF;
END
$checks$;

INSERT INTO neotoma_ops.deferred_steps (migration, position, description, statement) VALUES
  ('0003_base-schema', 1, 'check existing sources rows against sources_content_hash_sha256_lowercase_hex',
   $$SELECT neotoma_ops.validate_constraint('public.sources', 'sources_content_hash_sha256_lowercase_hex')$$),
  ('0003_base-schema', 2, 'check existing sources rows against sources_file_size_not_negative',
   $$SELECT neotoma_ops.validate_constraint('public.sources', 'sources_file_size_not_negative')$$)
ON CONFLICT (migration, position) DO NOTHING;

-- Down Migration
-- Puts back what the up migration changed on existing tables, and drops the tables only where it created them
-- (never on an existing v0.2.0 database).
DELETE FROM neotoma_ops.deferred_steps WHERE migration = '0003_base-schema';
ALTER TABLE public.sources DROP CONSTRAINT IF EXISTS sources_content_hash_sha256_lowercase_hex;
ALTER TABLE public.sources DROP CONSTRAINT IF EXISTS sources_file_size_not_negative;

DO $down$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT * FROM neotoma_ops.changed_privileges
            WHERE relation IN ('public.sources', 'public.interpretation_runs') AND to_regclass(relation) IS NOT NULL
            ORDER BY relation, grantee, privilege
  LOOP
    EXECUTE format(CASE r.change WHEN 'revoked' THEN 'GRANT %s ON TABLE %s TO %s' ELSE 'REVOKE %s ON TABLE %s FROM %s' END,
                   r.privilege, r.relation::regclass,
                   CASE WHEN r.grantee = 'PUBLIC' THEN 'PUBLIC' ELSE quote_ident(r.grantee) END);
  END LOOP;
  DELETE FROM neotoma_ops.changed_privileges WHERE relation IN ('public.sources', 'public.interpretation_runs');

  FOR r IN SELECT object_name FROM neotoma_ops.bootstrap_objects WHERE object_kind = 'policy' ORDER BY object_name LOOP
    IF to_regclass(split_part(r.object_name, ':', 1)) IS NOT NULL THEN
      EXECUTE format('DROP POLICY IF EXISTS %I ON %s', split_part(r.object_name, ':', 2),
                     split_part(r.object_name, ':', 1)::regclass);
    END IF;
  END LOOP;
  FOR r IN SELECT object_name FROM neotoma_ops.bootstrap_objects WHERE object_kind = 'row level security'
            ORDER BY object_name LOOP
    IF to_regclass(r.object_name) IS NOT NULL THEN
      EXECUTE format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY', r.object_name::regclass);
    END IF;
  END LOOP;
  DELETE FROM neotoma_ops.bootstrap_objects WHERE object_kind IN ('policy', 'row level security');

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
DROP TABLE IF EXISTS neotoma_ops.changed_privileges;
