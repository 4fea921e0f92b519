-- Up Migration
-- What Supabase provides and plain PostgreSQL lacks: the API roles, schema auth and auth.uid()/role()/jwt().
-- Each object is created only where absent, so on Supabase this changes nothing. What this migration did
-- create is recorded in neotoma_ops.bootstrap_objects, so the down migration removes only that.

CREATE SCHEMA IF NOT EXISTS neotoma_ops;
COMMENT ON SCHEMA neotoma_ops IS 'neotoma-ops bookkeeping: migrations, applied SQL files, counters. Not for clients.';

CREATE TABLE IF NOT EXISTS neotoma_ops.bootstrap_objects (
  object_kind text NOT NULL,
  object_name text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (object_kind, object_name)
);
ALTER TABLE neotoma_ops.bootstrap_objects ENABLE ROW LEVEL SECURITY;

DO $shim$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT * FROM (VALUES ('anon', false), ('authenticated', false), ('service_role', true)) AS t(name, bypass)
            ORDER BY t.name LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r.name) THEN
      EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT%s', r.name, CASE WHEN r.bypass THEN ' BYPASSRLS' ELSE '' END);
      INSERT INTO neotoma_ops.bootstrap_objects VALUES ('role', r.name);
    END IF;
  END LOOP;

  IF to_regnamespace('auth') IS NULL THEN
    CREATE SCHEMA auth;
    INSERT INTO neotoma_ops.bootstrap_objects VALUES ('schema', 'auth');
  END IF;

  -- Same definitions as Supabase's: claims come from the settings PostgREST sets per request.
  IF to_regprocedure('auth.uid()') IS NULL THEN
    CREATE FUNCTION auth.uid() RETURNS uuid
      LANGUAGE sql STABLE
      AS $f$
        SELECT coalesce(
          nullif(current_setting('request.jwt.claim.sub', true), ''),
          (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
        )::uuid
      $f$;
    INSERT INTO neotoma_ops.bootstrap_objects VALUES ('function', 'auth.uid()');
  END IF;

  IF to_regprocedure('auth.role()') IS NULL THEN
    CREATE FUNCTION auth.role() RETURNS text
      LANGUAGE sql STABLE
      AS $f$
        SELECT coalesce(
          nullif(current_setting('request.jwt.claim.role', true), ''),
          (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
        )::text
      $f$;
    INSERT INTO neotoma_ops.bootstrap_objects VALUES ('function', 'auth.role()');
  END IF;

  IF to_regprocedure('auth.jwt()') IS NULL THEN
    CREATE FUNCTION auth.jwt() RETURNS jsonb
      LANGUAGE sql STABLE
      AS $f$
        SELECT coalesce(
          nullif(current_setting('request.jwt.claim', true), ''),
          nullif(current_setting('request.jwt.claims', true), '')
        )::jsonb
      $f$;
    INSERT INTO neotoma_ops.bootstrap_objects VALUES ('function', 'auth.jwt()');
  END IF;
END
$shim$;

GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
GRANT EXECUTE ON FUNCTION auth.uid(), auth.role(), auth.jwt() TO anon, authenticated, service_role;

-- Nothing in neotoma_ops is for clients.
REVOKE ALL ON SCHEMA neotoma_ops FROM PUBLIC;
GRANT USAGE ON SCHEMA neotoma_ops TO service_role;

-- Down Migration
-- Removes what the up migration created, and only that. A role it created is dropped once nothing holds it any
-- more (roles are cluster-wide: a privilege in another database keeps it, with a notice).
DO $down$
DECLARE
  r record;
BEGIN
  IF to_regclass('neotoma_ops.bootstrap_objects') IS NULL THEN
    RETURN;
  END IF;
  IF EXISTS (SELECT 1 FROM neotoma_ops.bootstrap_objects WHERE object_kind = 'function' AND object_name = 'auth.jwt()') THEN
    DROP FUNCTION IF EXISTS auth.jwt();
  END IF;
  IF EXISTS (SELECT 1 FROM neotoma_ops.bootstrap_objects WHERE object_kind = 'function' AND object_name = 'auth.role()') THEN
    DROP FUNCTION IF EXISTS auth.role();
  END IF;
  IF EXISTS (SELECT 1 FROM neotoma_ops.bootstrap_objects WHERE object_kind = 'function' AND object_name = 'auth.uid()') THEN
    DROP FUNCTION IF EXISTS auth.uid();
  END IF;
  IF EXISTS (SELECT 1 FROM neotoma_ops.bootstrap_objects WHERE object_kind = 'schema' AND object_name = 'auth') THEN
    DROP SCHEMA IF EXISTS auth;
  END IF;
  FOR r IN SELECT object_name FROM neotoma_ops.bootstrap_objects WHERE object_kind = 'role' ORDER BY object_name LOOP
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r.object_name) THEN
      EXECUTE format('REVOKE ALL ON SCHEMA public FROM %I', r.object_name);
      IF to_regnamespace('neotoma_ops') IS NOT NULL THEN
        EXECUTE format('REVOKE ALL ON SCHEMA neotoma_ops FROM %I', r.object_name);
      END IF;
      BEGIN
        EXECUTE format('DROP ROLE %I', r.object_name);
      EXCEPTION WHEN dependent_objects_still_exist THEN
        RAISE NOTICE 'role % is kept: %', r.object_name, SQLERRM;
      END;
    END IF;
  END LOOP;
  DROP TABLE neotoma_ops.bootstrap_objects;
END
$down$;
