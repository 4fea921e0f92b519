-- Static check of every PL/pgSQL function of the project with plpgsql_check (what `supabase db lint` runs):
-- trigger functions against their table and transition tables, with performance and security warnings. No error,
-- and every warning left is explained below in one line. Where plpgsql_check is not installed for this server
-- (Debian packages it for PostgreSQL 15), the file says so and its test is skipped, not passed.
BEGIN;
SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'plpgsql_check') AS installed \gset
\if :installed
SELECT plan(3);

-- what remains, and why it stays: (function, level, message, why); `absent` names a schema of Supabase's whose
-- absence makes the finding (the code reaches it only where it exists, guarded by to_regclass/to_regprocedure)
CREATE TEMP TABLE explained (fn text, level text, message text, absent text, why text) ON COMMIT DROP;
INSERT INTO explained VALUES
  ('neotoma_ops.doctor', 'security', 'text type variable is not sanitized', NULL,
   'counts rows with a check''s own expression, read from the catalog (pg_get_constraintdef), never input'),
  ('neotoma_ops.drop_owned_objects', 'security', 'text type variable is not sanitized', NULL,
   'drops objects named by the record, which the catalog formatted with %I, never input'),
  ('neotoma_ops.drop_owned_objects', 'performance', 'routine is marked as VOLATILE, should be STABLE', NULL,
   'its DROP statements run through EXECUTE, which the check does not see'),
  ('neotoma_ops.rows_at_risk', 'security', 'text type variable is not sanitized', NULL,
   'counts the rows of a table named by the record (format %I.%I from the catalog), never input'),
  ('neotoma_ops.validate_constraint', 'security', 'text type variable is not sanitized', NULL,
   'counts rows with the constraint''s own expression from the catalog; the table is a regclass'),
  ('neotoma_ops.upload_queue_edge_function_secrets', 'error', 'relation "vault.decrypted_secrets" does not exist', 'vault',
   'reads Vault only where it is installed'),
  ('public.schedule_upload_queue_edge_function', 'error', 'relation "vault.secrets" does not exist', 'vault',
   'writes Vault only where it is installed'),
  ('public.invoke_upload_queue_processor', 'error', 'schema "net" does not exist', 'net',
   'calls pg_net only where it is installed'),
  ('public.storage_upload_limit', 'error', 'relation "storage.buckets" does not exist', 'storage',
   'reads Storage''s buckets only where Supabase Storage shares the database');

CREATE TEMP TABLE findings ON COMMIT DROP AS
WITH fns AS (
  SELECT p.oid, pg_catalog.format('%s.%s', n.nspname, p.proname) AS fn, p.prorettype = 'pg_catalog.trigger'::regtype AS is_trigger
    FROM pg_catalog.pg_proc p
    JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    JOIN pg_catalog.pg_language l ON l.oid = p.prolang
   WHERE l.lanname = 'plpgsql' AND n.nspname IN ('public', 'neotoma_ops')
     AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                      WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
)
SELECT f.fn, c.level, c.message
  FROM fns AS f
  LEFT JOIN LATERAL (SELECT t.tgrelid, t.tgoldtable, t.tgnewtable FROM pg_catalog.pg_trigger AS t
                      WHERE t.tgfoid = f.oid AND NOT t.tgisinternal ORDER BY t.tgname LIMIT 1) AS tr ON f.is_trigger
 CROSS JOIN LATERAL plpgsql_check_function_tb(f.oid, coalesce(tr.tgrelid, 0), newtable => tr.tgnewtable,
                                              oldtable => tr.tgoldtable, performance_warnings => true,
                                              security_warnings => true) AS c;

SELECT ok((SELECT count(DISTINCT p.oid) FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
            JOIN pg_catalog.pg_language l ON l.oid = p.prolang
           WHERE l.lanname = 'plpgsql' AND n.nspname IN ('public', 'neotoma_ops')) > 40,
  'plpgsql_check looked at every PL/pgSQL function of the project');
SELECT is(ARRAY(SELECT f.fn || ': ' || f.message FROM findings AS f
                 WHERE f.level = 'error'
                   AND NOT EXISTS (SELECT 1 FROM explained AS e
                                    WHERE e.fn = f.fn AND e.level = f.level AND e.message = f.message
                                      AND e.absent IS NOT NULL AND pg_catalog.to_regnamespace(e.absent) IS NULL)
                 ORDER BY 1),
          ARRAY[]::text[], 'no error (Supabase''s schemas aside where this database lacks them)');
SELECT is(ARRAY(SELECT DISTINCT f.fn || ' ' || f.level || ': ' || f.message FROM findings AS f
                 WHERE f.level <> 'error'
                   AND NOT EXISTS (SELECT 1 FROM explained AS e WHERE e.fn = f.fn AND e.level = f.level AND e.message = f.message)
                 ORDER BY 1),
          ARRAY[]::text[], 'every warning is fixed or explained');
\else
SELECT plan(1);
SELECT skip('plpgsql_check is not installed for this PostgreSQL (Debian: postgresql-15-plpgsql-check)', 1);
\endif

SELECT * FROM finish();
ROLLBACK;
