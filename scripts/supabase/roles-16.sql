-- Supabase-shaped cluster, part 1b (cluster-wide roles, PostgreSQL 16 and later), run by roles.sql as the
-- bootstrap superuser right after it. From 16 on, CREATEROLE gives no power over a role one did not create:
-- granting it, altering or dropping its members needs its ADMIN OPTION, and a membership carries INHERIT and
-- SET options. Supabase's projects on 16+ (supabase/postgres migrations/db/, "grant with admin to postgres 16
-- and above"; its PostgreSQL 17 role tests list the result) give `postgres` the API roles and the
-- authenticator WITH ADMIN OPTION; INHERIT and SET are the defaults (postgres is INHERIT). The roles were
-- created by the bootstrap superuser, as on Supabase, so postgres holds no implicit ADMIN OPTION of a creator.
\set ON_ERROR_STOP on

GRANT anon, authenticated, service_role, authenticator TO postgres WITH ADMIN OPTION;
