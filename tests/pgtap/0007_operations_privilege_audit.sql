-- Privilege audit, generated from the catalog: every table, view, sequence, schema and function of the
-- schemas public and neotoma_ops (objects of extensions such as pgTAP excluded) is checked, so an object
-- added later is covered without editing this file. What clients may do is written out below as explicit
-- expectations; anything not listed is expected to be denied.
--   * RLS enabled on every table; views run with the caller's rights (security_invoker);
--   * exact table/column/sequence privileges of anon, authenticated, service_role, over every privilege the
--     server knows (read from acldefault(): MAINTAIN on PostgreSQL 17);
--   * function EXECUTE: service_role on every function, clients only on an allow-list;
--   * every function pins search_path (SECURITY DEFINER ones to '' or pg_catalog);
--   * no object owned by a role clients can become; no policy for anon or PUBLIC;
--   * live checks: authenticated user A sees only their own rows through every readable relation, and
--     can change nothing of user B through any relation or function, nor lock a relation against writers;
--     anon can read and call nothing.
BEGIN;

-- the client roles and the expectations --------------------------------------------------------------
CREATE TEMP TABLE audit_role (role name PRIMARY KEY) ON COMMIT DROP;
INSERT INTO audit_role VALUES ('anon'), ('authenticated'), ('service_role');

-- Relation privileges that are granted on purpose; every other (role, relation) pair must be 'none'.
-- Format: table privileges in the order SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER, MAINTAIN
-- (sequences: USAGE, SELECT, UPDATE), then column privileges as PRIV(col, ...) in column order.
CREATE TEMP TABLE want_rel (role name, rel text, privs text, PRIMARY KEY (role, rel)) ON COMMIT DROP;
INSERT INTO want_rel VALUES
  -- signed-in users read their own rows (RLS) and the plan catalogue
  ('authenticated', 'public.sources',              'SELECT'),
  ('authenticated', 'public.interpretation_runs',  'SELECT'),
  ('authenticated', 'public.plans',                'SELECT'),
  ('authenticated', 'public.storage_usage',        'SELECT'),
  ('authenticated', 'public.usage_periods',        'SELECT'),
  ('authenticated', 'public.storage_usage_report', 'SELECT'),
  -- the status of their own upload jobs; lease internals (locked_by, locked_until, lease_token) stay hidden
  ('authenticated', 'public.upload_queue',
   'SELECT(id, user_id, source_id, bucket, storage_path, content_hash, byte_size, mime_type, status, retry_count, '
   'max_retries, next_retry_at, error_message, created_at, updated_at, completed_at, failed_at)'),
  -- the API server / workers / operators
  ('service_role', 'public.sources',               'SELECT, INSERT, UPDATE, DELETE'),
  ('service_role', 'public.interpretation_runs',   'SELECT, INSERT, UPDATE, DELETE'),
  ('service_role', 'public.plans',                 'SELECT, INSERT, UPDATE, DELETE'),
  ('service_role', 'public.storage_usage',         'SELECT, INSERT, UPDATE, DELETE'),
  ('service_role', 'public.usage_periods',         'SELECT, INSERT, UPDATE, DELETE'),
  ('service_role', 'public.usage_drift_log',       'SELECT, INSERT, UPDATE, DELETE'),
  ('service_role', 'public.upload_queue',          'SELECT, INSERT, UPDATE, DELETE'),
  ('service_role', 'public.upload_queue_payloads', 'SELECT, INSERT, UPDATE, DELETE'),
  ('service_role', 'public.storage_usage_report',  'SELECT'),
  ('service_role', 'neotoma_ops.interpretation_counters', 'SELECT'),
  ('service_role', 'neotoma_ops.interpretation_settings', 'SELECT, UPDATE'),
  ('service_role', 'neotoma_ops.ops_settings',            'SELECT, UPDATE'),
  ('service_role', 'neotoma_ops.storage_settings',        'SELECT, UPDATE'),
  ('service_role', 'neotoma_ops.upload_queue_settings',   'SELECT, UPDATE'),
  ('service_role', 'neotoma_ops.upload_queue_counters',   'SELECT, INSERT, UPDATE'),
  ('service_role', 'neotoma_ops.upload_queue_payload_bytes', 'SELECT, INSERT, UPDATE'),
  ('service_role', 'neotoma_ops.upload_queue_payload_bytes_freed', 'SELECT, INSERT, UPDATE'),
  ('service_role', 'neotoma_ops.upload_queue_full_rejections', 'SELECT'),
  ('service_role', 'neotoma_ops.quota_rejections_storage',         'SELECT'),
  ('service_role', 'neotoma_ops.quota_rejections_interpretations', 'SELECT'),
  ('service_role', 'neotoma_ops.quota_rejections_file_size',       'SELECT');

-- Functions clients may execute (service_role may execute every function of the project but the operator's
-- own). Both are pure, read no table and run with the caller's rights.
CREATE TEMP TABLE want_fn (role name, fn text, PRIMARY KEY (role, fn)) ON COMMIT DROP;
INSERT INTO want_fn VALUES
  ('authenticated', 'public.billing_period_bounds(integer, timestamp with time zone)'),
  ('authenticated', 'public.format_bytes(bigint)');
-- Functions for the operator (the role that runs the migrations) alone: they read Vault's secrets or put them
-- there with the caller's rights, which no API role has on Supabase.
CREATE TEMP TABLE operator_fn (fn text PRIMARY KEY) ON COMMIT DROP;
INSERT INTO operator_fn VALUES
  ('neotoma_ops.upload_queue_edge_function_secrets()'),
  ('public.schedule_upload_queue_edge_function(text, text)');

-- Relations readable by authenticated that hold no per-user rows (shared reference data).
CREATE TEMP TABLE shared_rel (rel text PRIMARY KEY) ON COMMIT DROP;
INSERT INTO shared_rel VALUES ('public.plans');

-- the project's objects, from the catalog --------------------------------------------------------------
CREATE TEMP TABLE proj_rel ON COMMIT DROP AS
SELECT c.oid, c.relkind, format('%I.%I', n.nspname, c.relname) AS name, c.relowner, c.relrowsecurity,
       c.reloptions,
       EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
                WHERE a.attrelid = c.oid AND a.attname = 'user_id' AND NOT a.attisdropped) AS has_user_id
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname IN ('public', 'neotoma_ops')
   AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e');

-- null_call: a call with NULL arguments passed as sub-selects, so the planner cannot fold a STRICT function
-- call away before the EXECUTE check (a folded call runs nothing but would also prove nothing).
CREATE TEMP TABLE proj_fn ON COMMIT DROP AS
SELECT p.oid, format('%I.%I(%s)', n.nspname, p.proname, pg_catalog.oidvectortypes(p.proargtypes)) AS name,
       p.proowner, p.prosecdef, p.proconfig, p.prorettype = 'pg_catalog.trigger'::regtype AS is_trigger,
       format('%I.%I(%s)', n.nspname, p.proname,
              (SELECT string_agg('(SELECT NULL::' || pg_catalog.format_type(t, NULL) || ')', ', ' ORDER BY i)
                 FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY u(t, i))) AS null_call
  FROM pg_catalog.pg_proc p
  JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname IN ('public', 'neotoma_ops')
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e');

-- Every privilege this server knows on a relation of kind `kind` (acldefault() of its owner), in the order of
-- the format above; one the format does not name yet comes after, by name (so it is still checked).
CREATE FUNCTION pg_temp.server_privs(kind "char") RETURNS TABLE (priv text, ord bigint) LANGUAGE sql STABLE AS $$
  SELECT a.privilege_type,
         coalesce(array_position(CASE WHEN kind = 'S' THEN ARRAY['USAGE', 'SELECT', 'UPDATE']
                                      ELSE ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES',
                                                 'TRIGGER', 'MAINTAIN'] END, a.privilege_type), 100)
    FROM pg_catalog.aclexplode(pg_catalog.acldefault(CASE WHEN kind = 'S' THEN 's' ELSE 'r' END::"char",
                                                     'pg_database_owner'::regrole)) a $$;

-- Actual privileges of role r on relation rel, in the format of want_rel.
CREATE FUNCTION pg_temp.rel_privs(r name, rel oid, kind "char") RETURNS text LANGUAGE sql STABLE AS $$
  SELECT coalesce(string_agg(p, ', ' ORDER BY ord, p), 'none') FROM (
    SELECT u.ord, u.priv AS p
      FROM pg_temp.server_privs(kind) u
     WHERE CASE WHEN kind = 'S' THEN pg_catalog.has_sequence_privilege(r, rel, u.priv)
                ELSE pg_catalog.has_table_privilege(r, rel, u.priv) END
    UNION ALL
    SELECT 1000 + u.ord, u.priv || '(' || c.cols || ')'
      FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'REFERENCES']) WITH ORDINALITY u(priv, ord)
     CROSS JOIN LATERAL (
           SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum) AS cols
             FROM pg_catalog.pg_attribute a
            WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped
              AND pg_catalog.has_column_privilege(r, rel, a.attnum, u.priv)) c
     WHERE kind <> 'S' AND c.cols IS NOT NULL AND NOT pg_catalog.has_table_privilege(r, rel, u.priv)
  ) x $$;

-- Client roles that can become (are members of) role o.
CREATE FUNCTION pg_temp.assumable_by(o oid) RETURNS text LANGUAGE sql STABLE AS $$
  SELECT coalesce(string_agg(role::text, ', ' ORDER BY role), 'none')
    FROM audit_role WHERE pg_catalog.pg_has_role(role, o, 'MEMBER') $$;

-- catalog checks: one row per assertion ----------------------------------------------------------------
CREATE TEMP TABLE checks (ord serial, got text, want text, descr text) ON COMMIT DROP;

-- RLS on every table (partitions and partitioned tables included)
INSERT INTO checks (got, want, descr)
SELECT CASE WHEN relrowsecurity THEN 'enabled' ELSE 'disabled' END, 'enabled', 'RLS enabled on table ' || name
  FROM proj_rel WHERE relkind IN ('r', 'p') ORDER BY name;

-- views run with the caller's rights, so the caller's RLS applies (an owner-rights view bypasses RLS)
INSERT INTO checks (got, want, descr)
SELECT CASE WHEN reloptions && ARRAY['security_invoker=true', 'security_invoker=on', 'security_invoker=1']
            THEN 'security_invoker' ELSE 'owner rights' END, 'security_invoker',
       'view ' || name || ' runs with the caller''s rights'
  FROM proj_rel WHERE relkind IN ('v', 'm') ORDER BY name;

-- the format above names every relation privilege of this server (PostgreSQL 17 adds MAINTAIN)
INSERT INTO checks (got, want, descr)
SELECT coalesce((SELECT string_agg(priv, ', ' ORDER BY priv) FROM pg_temp.server_privs(k.kind) WHERE ord = 100), ''),
       '', format('the audit''s format names every %s privilege of PostgreSQL %s (%s)', k.what,
                  current_setting('server_version_num')::integer / 10000,
                  (SELECT string_agg(priv, ', ' ORDER BY ord) FROM pg_temp.server_privs(k.kind)))
  FROM (VALUES ('r'::"char", 'table'), ('S'::"char", 'sequence')) k(kind, what) ORDER BY k.what;

-- exact relation privileges, per client role
INSERT INTO checks (got, want, descr)
SELECT pg_temp.rel_privs(ar.role, pr.oid, pr.relkind), coalesce(w.privs, 'none'),
       format('%s has exactly the intended privileges on %s', ar.role, pr.name)
  FROM audit_role ar CROSS JOIN proj_rel pr
  LEFT JOIN want_rel w ON w.role = ar.role AND w.rel = pr.name
 ORDER BY pr.name, ar.role;
-- the expectations name existing relations (a stale entry hides nothing)
INSERT INTO checks (got, want, descr)
SELECT CASE WHEN EXISTS (SELECT 1 FROM proj_rel pr WHERE pr.name = x.rel) THEN 'exists' ELSE 'missing' END,
       'exists', 'expected-privilege entry names an existing relation: ' || x.rel
  FROM (SELECT rel FROM want_rel UNION SELECT rel FROM shared_rel) x ORDER BY x.rel;

-- the migration runner's own functions (sql/runner/: in neotoma_ops, not in the record it keeps) are the operator's too
INSERT INTO operator_fn
SELECT pf.name FROM proj_fn pf
 WHERE pf.name LIKE 'neotoma\_ops.%'
   AND NOT EXISTS (SELECT 1 FROM neotoma_ops.owned_objects o WHERE o.kind = 'function' AND o.identity = pf.name)
ON CONFLICT DO NOTHING;

-- function EXECUTE: service_role on all but the operator's, clients only where allow-listed
INSERT INTO checks (got, want, descr)
SELECT CASE WHEN pg_catalog.has_function_privilege(ar.role, pf.oid, 'EXECUTE') THEN 'EXECUTE' ELSE 'none' END,
       CASE WHEN (ar.role = 'service_role' AND o.fn IS NULL) OR w.fn IS NOT NULL THEN 'EXECUTE' ELSE 'none' END,
       format('%s %s execute %s', ar.role,
              CASE WHEN (ar.role = 'service_role' AND o.fn IS NULL) OR w.fn IS NOT NULL THEN 'may' ELSE 'may not' END, pf.name)
  FROM audit_role ar CROSS JOIN proj_fn pf
  LEFT JOIN want_fn w ON w.role = ar.role AND w.fn = pf.name
  LEFT JOIN operator_fn o ON o.fn = pf.name
 ORDER BY pf.name, ar.role;
INSERT INTO checks (got, want, descr)
SELECT CASE WHEN pf.oid IS NULL THEN 'missing' WHEN pf.prosecdef THEN 'security definer' ELSE 'security invoker' END,
       'security invoker', 'operator function exists and runs with the caller''s rights: ' || o.fn
  FROM operator_fn o LEFT JOIN proj_fn pf ON pf.name = o.fn ORDER BY o.fn;
INSERT INTO checks (got, want, descr)
SELECT CASE WHEN pf.oid IS NULL THEN 'missing'
            WHEN pf.prosecdef THEN 'security definer' ELSE 'security invoker' END,
       'security invoker', 'client-callable function exists and runs with the caller''s rights: ' || w.fn
  FROM want_fn w LEFT JOIN proj_fn pf ON pf.name = w.fn ORDER BY w.fn;

-- search_path pinned on every function; SECURITY DEFINER ones to an empty path or pg_catalog only. Except the
-- functions written to be inlined into their callers' queries (one rule in one place, at no cost): a SET clause
-- would stop the inlining. Those must stay inlinable: LANGUAGE sql, SECURITY INVOKER (the caller's rights and
-- path), not volatile, no SET clause at all; their bodies schema-qualify what they call.
CREATE TEMP TABLE inlined_fn (fn text PRIMARY KEY) ON COMMIT DROP;
INSERT INTO inlined_fn VALUES
  ('neotoma_ops.effective_limit(anyelement, anyelement)'),
  ('neotoma_ops.interpretation_run_is_stale(text, timestamp with time zone)'),
  ('neotoma_ops.storage_key(uuid, text)');
INSERT INTO checks (got, want, descr)
SELECT CASE WHEN sp IS NULL THEN 'search_path not pinned'
            WHEN NOT prosecdef OR sp IN ('""', 'pg_catalog', 'pg_catalog, pg_temp') THEN 'pinned'
            ELSE 'search_path=' || sp END, 'pinned',
       CASE WHEN prosecdef THEN 'SECURITY DEFINER ' ELSE '' END || name || ' pins search_path'
  FROM (SELECT pf.*, (SELECT substr(c, length('search_path=') + 1) FROM unnest(pf.proconfig) c
                       WHERE c LIKE 'search_path=%') AS sp FROM proj_fn pf) f
 WHERE name NOT IN (SELECT fn FROM inlined_fn)
 ORDER BY name;
INSERT INTO checks (got, want, descr)
SELECT CASE WHEN pf.oid IS NULL THEN 'missing'
            WHEN pf.prosecdef THEN 'security definer'
            WHEN l.lanname <> 'sql' THEN 'language ' || l.lanname
            WHEN p.provolatile = 'v' THEN 'volatile'
            WHEN pf.proconfig IS NOT NULL THEN 'has a SET clause'
            ELSE 'inlinable' END,
       'inlinable', i.fn || ' stays inlinable (SQL, SECURITY INVOKER, not volatile, no SET clause)'
  FROM inlined_fn i LEFT JOIN proj_fn pf ON pf.name = i.fn
  LEFT JOIN pg_catalog.pg_proc p ON p.oid = pf.oid
  LEFT JOIN pg_catalog.pg_language l ON l.oid = p.prolang
 ORDER BY i.fn;

-- ownership: nothing belongs to a role a client can become
INSERT INTO checks (got, want, descr)
SELECT pg_temp.assumable_by(owner), 'none', kind || ' ' || name || ' is not owned by a role clients can become'
  FROM (SELECT 'relation' AS kind, name, relowner AS owner FROM proj_rel
        UNION ALL SELECT 'function', name, proowner FROM proj_fn
        UNION ALL SELECT 'schema', nspname::text, nspowner FROM pg_catalog.pg_namespace
                   WHERE nspname IN ('public', 'neotoma_ops')) o
 ORDER BY kind, name;

-- schema privileges: USAGE on public for all three, on neotoma_ops for service_role only; CREATE for none
INSERT INTO checks (got, want, descr)
SELECT concat_ws(', ', CASE WHEN pg_catalog.has_schema_privilege(ar.role, s.nsp, 'USAGE') THEN 'USAGE' END,
                       CASE WHEN pg_catalog.has_schema_privilege(ar.role, s.nsp, 'CREATE') THEN 'CREATE' END),
       CASE WHEN s.nsp = 'public' OR ar.role = 'service_role' THEN 'USAGE' ELSE '' END,
       format('%s has exactly the intended privileges on schema %s', ar.role, s.nsp)
  FROM audit_role ar CROSS JOIN (VALUES ('public'), ('neotoma_ops')) s(nsp)
 ORDER BY s.nsp, ar.role;

-- no policy is meant for anon or PUBLIC
INSERT INTO checks (got, want, descr)
SELECT coalesce(array_to_string(ARRAY(SELECT unnest(pol.roles) INTERSECT SELECT unnest(ARRAY['anon', 'public']::name[])), ', '), ''),
       '', format('policy "%s" on %s.%s is not for anon or PUBLIC', pol.policyname, pol.schemaname, pol.tablename)
  FROM pg_catalog.pg_policies pol
 WHERE pol.schemaname IN ('public', 'neotoma_ops')
 ORDER BY pol.schemaname, pol.tablename, pol.policyname;

-- live checks: fixture rows for two users --------------------------------------------------------------
-- A = a0000000-..., B = b0000000-...; every per-user table gets rows of both.
INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
SELECT u, md5(u::text || k) || md5(k || u::text), 'text/plain', u::text || '/x', 10
  FROM (VALUES ('a0000000-0000-4000-8000-00000000000a'::uuid), ('b0000000-0000-4000-8000-00000000000b'::uuid)) us(u)
 CROSS JOIN (VALUES ('1'), ('2')) ks(k);
INSERT INTO public.interpretation_runs (user_id, source_id, interpretation_config, status)
SELECT user_id, id, '{}', 'pending' FROM public.sources
 WHERE user_id IN ('a0000000-0000-4000-8000-00000000000a', 'b0000000-0000-4000-8000-00000000000b');
INSERT INTO public.usage_periods (user_id, period_start, period_end, billing_month, plan_id, interpretation_count,
                                  total_bytes, total_sources)
SELECT u, '2020-01-01', '2020-02-01', '2020-01', 'free', 1, 1, 1
  FROM (VALUES ('a0000000-0000-4000-8000-00000000000a'::uuid), ('b0000000-0000-4000-8000-00000000000b'::uuid)) us(u);
INSERT INTO public.usage_drift_log (user_id, old_total_bytes, new_total_bytes, old_total_sources, new_total_sources)
SELECT u, 1, 2, 1, 2
  FROM (VALUES ('a0000000-0000-4000-8000-00000000000a'::uuid), ('b0000000-0000-4000-8000-00000000000b'::uuid)) us(u);
INSERT INTO public.upload_queue (user_id, source_id, storage_path, content_hash, byte_size, mime_type)
SELECT user_id, id, storage_url, content_hash, file_size, mime_type FROM public.sources
 WHERE user_id IN ('a0000000-0000-4000-8000-00000000000a', 'b0000000-0000-4000-8000-00000000000b');
INSERT INTO public.upload_queue_payloads (job_id, content)
SELECT id, '\x00' FROM public.upload_queue
 WHERE user_id IN ('a0000000-0000-4000-8000-00000000000a', 'b0000000-0000-4000-8000-00000000000b');

-- Relations authenticated can read (whole or some columns).
CREATE TEMP TABLE readable ON COMMIT DROP AS
SELECT pr.* FROM proj_rel pr
 WHERE pr.relkind <> 'S'
   AND (pg_catalog.has_table_privilege('authenticated', pr.oid, 'SELECT')
        OR pg_catalog.has_any_column_privilege('authenticated', pr.oid, 'SELECT'));

-- A readable relation either holds per-user rows (user_id) or is listed as shared reference data.
INSERT INTO checks (got, want, descr)
SELECT CASE WHEN has_user_id THEN 'per-user' WHEN name IN (SELECT rel FROM shared_rel) THEN 'shared'
            ELSE 'readable without user_id' END,
       CASE WHEN name IN (SELECT rel FROM shared_rel) THEN 'shared' ELSE 'per-user' END,
       'relation readable by authenticated is per-user or listed as shared: ' || name
  FROM readable ORDER BY name;

-- Both users have rows in every readable per-user relation (so the isolation checks below can fail).
CREATE FUNCTION pg_temp.count_of(q text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE n bigint; BEGIN EXECUTE q INTO n; RETURN n; END $$;
INSERT INTO checks (got, want, descr)
SELECT CASE WHEN pg_temp.count_of(format('SELECT count(*) FROM %s WHERE user_id = %L', name, u)) > 0
            THEN 'has rows' ELSE 'no fixture rows: add some for this relation above' END, 'has rows',
       format('fixture: user %s has rows in %s', left(u, 1), name)
  FROM readable CROSS JOIN (VALUES ('a0000000-0000-4000-8000-00000000000a'), ('b0000000-0000-4000-8000-00000000000b')) us(u)
 WHERE has_user_id ORDER BY name, u;

-- The outcome of running q: 'N rows' or 'error SQLSTATE'.
CREATE FUNCTION pg_temp.outcome(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  EXECUTE q;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n || ' rows';
EXCEPTION WHEN OTHERS THEN
  RETURN 'error ' || SQLSTATE;
END $$;

-- Live cases, run under the client role: kind read_own/read_other (authenticated on readable per-user
-- relations), deny (42501 expected), write (42501 or 0 rows; views may also be not updatable), call.
CREATE TEMP TABLE live (ord serial, role name, kind text, q text, descr text) ON COMMIT DROP;
GRANT SELECT ON live TO anon, authenticated;

INSERT INTO live (role, kind, q, descr)
SELECT 'authenticated', 'read_other',
       format('SELECT 1 FROM %s WHERE user_id IS DISTINCT FROM %L', name, 'a0000000-0000-4000-8000-00000000000a'),
       'user A sees no row of another user in ' || name
  FROM readable WHERE has_user_id ORDER BY name;
INSERT INTO live (role, kind, q, descr)
SELECT 'authenticated', 'read_own',
       format('SELECT 1 FROM %s WHERE user_id = %L', name, 'a0000000-0000-4000-8000-00000000000a'),
       'user A sees their own rows in ' || name
  FROM readable WHERE has_user_id ORDER BY name;
INSERT INTO live (role, kind, q, descr)
SELECT 'authenticated', 'deny', format('SELECT 1 FROM %s', name), 'authenticated cannot read ' || name
  FROM proj_rel WHERE relkind <> 'S' AND oid NOT IN (SELECT oid FROM readable) ORDER BY name;
INSERT INTO live (role, kind, q, descr)
SELECT 'anon', 'deny', format('SELECT 1 FROM %s', name), 'anon cannot read ' || name
  FROM proj_rel WHERE relkind <> 'S' ORDER BY name;
INSERT INTO live (role, kind, q, descr)
SELECT r.role, 'deny', format('SELECT pg_catalog.nextval(%L)', name), r.role || ' cannot advance sequence ' || name
  FROM proj_rel CROSS JOIN (VALUES ('anon'), ('authenticated')) r(role) WHERE relkind = 'S' ORDER BY name, r.role;
-- the lock every writer waits behind (allowed by UPDATE, DELETE, TRUNCATE and, on PostgreSQL 17, MAINTAIN)
INSERT INTO live (role, kind, q, descr)
SELECT r.role, 'deny', format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', name),
       r.role || ' cannot lock ' || name || ' against every other session'
  FROM proj_rel CROSS JOIN (VALUES ('anon'), ('authenticated')) r(role) WHERE relkind <> 'S' ORDER BY name, r.role;

-- writes aimed at user B's rows (or at all rows where a relation has no user_id)
INSERT INTO live (role, kind, q, descr)
SELECT r.role, CASE WHEN w.verb = 'TRUNCATE' THEN 'deny' WHEN pr.relkind IN ('r', 'p') THEN 'write' ELSE 'write_view' END,
       CASE w.verb
         WHEN 'UPDATE' THEN format('UPDATE %s SET %I = %I %s', pr.name, c.col, c.col, wh.cond)
         WHEN 'DELETE' THEN format('DELETE FROM %s %s', pr.name, wh.cond)
         WHEN 'INSERT' THEN CASE WHEN pr.has_user_id
                                 THEN format('INSERT INTO %s (user_id) VALUES (%L)', pr.name, 'b0000000-0000-4000-8000-00000000000b')
                                 ELSE format('INSERT INTO %s DEFAULT VALUES', pr.name) END
         ELSE format('TRUNCATE %s CASCADE', pr.name) END,
       format('%s cannot %s %s', r.role, lower(w.verb),
              CASE WHEN pr.has_user_id AND w.verb <> 'TRUNCATE' THEN 'rows of user B in ' ELSE '' END || pr.name)
  FROM proj_rel pr
 CROSS JOIN (VALUES ('anon'), ('authenticated')) r(role)
 CROSS JOIN (VALUES (1, 'INSERT'), (2, 'UPDATE'), (3, 'DELETE'), (4, 'TRUNCATE')) w(o, verb)
 CROSS JOIN LATERAL (SELECT a.attname AS col FROM pg_catalog.pg_attribute a
                      WHERE a.attrelid = pr.oid AND a.attnum > 0 AND NOT a.attisdropped
                        AND a.attidentity = '' AND a.attgenerated = ''
                      ORDER BY a.attnum LIMIT 1) c
 CROSS JOIN LATERAL (SELECT CASE WHEN pr.has_user_id
                                 THEN format('WHERE user_id = %L', 'b0000000-0000-4000-8000-00000000000b')
                                 ELSE '' END AS cond) wh
 WHERE pr.relkind <> 'S' AND NOT (pr.relkind IN ('v', 'm') AND w.verb = 'TRUNCATE')
 ORDER BY pr.name, r.role, w.o;

-- every function: clients are refused unless allow-listed
INSERT INTO live (role, kind, q, descr)
SELECT r.role, CASE WHEN w.fn IS NULL THEN 'deny' ELSE 'call' END,
       CASE WHEN pf.is_trigger THEN 'SELECT ' || pf.null_call ELSE 'SELECT * FROM ' || pf.null_call END,
       CASE WHEN w.fn IS NULL THEN r.role || ' is refused calling ' ELSE r.role || ' may call ' END || pf.name
  FROM proj_fn pf CROSS JOIN (VALUES ('anon'), ('authenticated')) r(role)
  LEFT JOIN want_fn w ON w.role = r.role AND w.fn = pf.name
 ORDER BY pf.name, r.role;

-- run ------------------------------------------------------------------------------------------------
SELECT plan(((SELECT count(*) FROM checks) + (SELECT count(*) FROM live))::integer);

SELECT is(got, want, descr) FROM checks ORDER BY ord;

SET LOCAL request.jwt.claims = '{"sub":"a0000000-0000-4000-8000-00000000000a","role":"authenticated"}';
SET LOCAL ROLE authenticated;
SELECT CASE kind
         WHEN 'read_other' THEN is_empty(q, descr)
         WHEN 'read_own'   THEN isnt_empty(q, descr)
         WHEN 'deny'       THEN is(pg_temp.outcome(q), 'error 42501', descr)
         WHEN 'write'      THEN matches(pg_temp.outcome(q), '^(error 42501|0 rows)$', descr)
         WHEN 'write_view' THEN matches(pg_temp.outcome(q), '^(error 42501|error 55000|error 0A000|0 rows)$', descr)
         WHEN 'call'       THEN isnt(pg_temp.outcome(q), 'error 42501', descr)
       END
  FROM live WHERE role = 'authenticated' ORDER BY ord;
RESET ROLE;

SET LOCAL request.jwt.claims = '';
SET LOCAL ROLE anon;
SELECT CASE kind
         WHEN 'deny'       THEN is(pg_temp.outcome(q), 'error 42501', descr)
         WHEN 'write'      THEN matches(pg_temp.outcome(q), '^(error 42501|0 rows)$', descr)
         WHEN 'write_view' THEN matches(pg_temp.outcome(q), '^(error 42501|error 55000|error 0A000|0 rows)$', descr)
         WHEN 'call'       THEN isnt(pg_temp.outcome(q), 'error 42501', descr)
       END
  FROM live WHERE role = 'anon' ORDER BY ord;
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
