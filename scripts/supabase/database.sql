-- Supabase-shaped cluster, part 2 (one database), run by scripts/pg-cluster.sh as supabase_admin on a
-- database supabase_admin created. Reproduces what matters of supabase/postgres migrations/db/:
--  * schema extensions (pgcrypto, uuid-ossp) usable by every API role;
--  * schema public: `postgres` may create in it, the API roles may use it, and Supabase's DEFAULT PRIVILEGES
--    hand anon, authenticated and service_role ALL on every table, sequence and function that postgres or
--    supabase_admin creates there;
--  * schema auth owned by the admin, auth.uid()/role()/jwt()/email() reading the claims as GoTrue's do;
--  * pg_cron created by the admin; postgres may use cron.schedule/unschedule/alter_job, read cron.job
--    (writes revoked) and use cron.job_run_details (no TRIGGER), as Supabase's pg_cron grants leave it.
\set ON_ERROR_STOP on

SELECT current_database() AS db \gset
GRANT ALL ON DATABASE :"db" TO postgres;

CREATE SCHEMA IF NOT EXISTS extensions;
CREATE EXTENSION IF NOT EXISTS "uuid-ossp" WITH SCHEMA extensions;
CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA extensions;
GRANT ALL ON SCHEMA extensions TO postgres;
GRANT USAGE ON SCHEMA extensions TO anon, authenticated, service_role;

GRANT ALL ON SCHEMA public TO postgres;
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public
  GRANT ALL ON TABLES TO postgres, anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public
  GRANT ALL ON SEQUENCES TO postgres, anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public
  GRANT ALL ON FUNCTIONS TO postgres, anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_admin IN SCHEMA public
  GRANT ALL ON TABLES TO postgres, anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_admin IN SCHEMA public
  GRANT ALL ON SEQUENCES TO postgres, anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES FOR ROLE supabase_admin IN SCHEMA public
  GRANT ALL ON FUNCTIONS TO postgres, anon, authenticated, service_role;

CREATE SCHEMA IF NOT EXISTS auth AUTHORIZATION supabase_admin;
CREATE OR REPLACE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''),
                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid
$$;
CREATE OR REPLACE FUNCTION auth.role() RETURNS text LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('request.jwt.claim.role', true), ''),
                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role'))::text
$$;
CREATE OR REPLACE FUNCTION auth.email() RETURNS text LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('request.jwt.claim.email', true), ''),
                  (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'email'))::text
$$;
CREATE OR REPLACE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('request.jwt.claim', true), ''),
                  nullif(current_setting('request.jwt.claims', true), ''))::jsonb
$$;
GRANT USAGE ON SCHEMA auth TO postgres, anon, authenticated, service_role;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA auth TO postgres, anon, authenticated, service_role;

-- (only where pg_cron is preloaded: a cluster made without it tests that error)
SELECT 'pg_cron' = ANY (string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ','))
  AS cron_preloaded \gset
\if :cron_preloaded
CREATE EXTENSION IF NOT EXISTS pg_cron;
GRANT USAGE ON SCHEMA cron TO postgres WITH GRANT OPTION;
GRANT ALL ON ALL TABLES IN SCHEMA cron TO postgres WITH GRANT OPTION;
GRANT ALL ON ALL SEQUENCES IN SCHEMA cron TO postgres WITH GRANT OPTION;
GRANT ALL ON ALL FUNCTIONS IN SCHEMA cron TO postgres WITH GRANT OPTION;
REVOKE ALL ON TABLE cron.job FROM postgres;
GRANT SELECT ON TABLE cron.job TO postgres WITH GRANT OPTION;
REVOKE TRIGGER ON TABLE cron.job_run_details FROM postgres;
\endif

-- Supabase's own extensions, where the cluster preloads them (scripts/pg-cluster.sh): pg_net in schema
-- extensions (its objects in schema net, usable by every role since 0.12) and Vault with the grants Supabase gives
-- postgres (supabase/postgres migrations/db/migrations/20221207154255_create_vault.sql).
SELECT 'pg_net' = ANY (string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ','))
  AS net_preloaded \gset
\if :net_preloaded
CREATE EXTENSION IF NOT EXISTS pg_net WITH SCHEMA extensions;
CREATE EXTENSION IF NOT EXISTS supabase_vault;
GRANT USAGE ON SCHEMA vault TO postgres WITH GRANT OPTION;
GRANT SELECT, DELETE ON vault.secrets, vault.decrypted_secrets TO postgres WITH GRANT OPTION;
GRANT EXECUTE ON FUNCTION vault.create_secret, vault.update_secret, vault._crypto_aead_det_decrypt TO postgres WITH GRANT OPTION;
\endif
