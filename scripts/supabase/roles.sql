-- Supabase-shaped cluster, part 1 (cluster-wide roles), run once by scripts/pg-cluster.sh as the bootstrap
-- superuser supabase_admin. Reproduces what matters of supabase/postgres migrations/db/ (init-scripts and
-- demote-postgres): the API roles, the authenticator, and `postgres` as a NON-superuser that owns what it
-- creates and can act as the API roles. psql variable: pw (password of postgres).
\set ON_ERROR_STOP on

CREATE ROLE anon NOLOGIN NOINHERIT;
CREATE ROLE authenticated NOLOGIN NOINHERIT;
CREATE ROLE service_role NOLOGIN NOINHERIT BYPASSRLS;
CREATE ROLE authenticator LOGIN NOINHERIT;
GRANT anon, authenticated, service_role TO authenticator;

-- as after demote-postgres: no SUPERUSER, but CREATEDB, CREATEROLE, REPLICATION, BYPASSRLS
CREATE ROLE postgres LOGIN NOSUPERUSER CREATEDB CREATEROLE REPLICATION BYPASSRLS PASSWORD :'pw';
GRANT anon, authenticated, service_role TO postgres;
ALTER ROLE postgres SET search_path TO "$user", public, extensions;

ALTER ROLE anon SET statement_timeout = '3s';
ALTER ROLE authenticated SET statement_timeout = '8s';

-- PostgreSQL 16+: the role rules changed; what Supabase adds for postgres there is in roles-16.sql
SELECT current_setting('server_version_num')::integer >= 160000 AS role_rules_16 \gset
\if :role_rules_16
\ir roles-16.sql
\endif
