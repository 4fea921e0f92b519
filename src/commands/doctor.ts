import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type pg from 'pg';
import { checkCron, checkServerVersion } from '../db/preflight.js';
import { plannedSqlFiles, readMigrationStatus, sqlFileCollisions } from '../migrate.js';
import { migrationsDir } from '../paths.js';

export type CheckStatus = 'ok' | 'warn' | 'problem';

export interface DoctorCheck {
  check: string;
  status: CheckStatus;
  detail: string;
  /** What to do about a warning or a problem. */
  fix: string | null;
}

/** The JSON shape of `neotoma-ops doctor --json` (docs/schemas/doctor.schema.json). */
export interface DoctorReport {
  generated_at: string;
  database: string;
  role: string;
  /** False when any check is a problem (the command then exits 1). */
  ok: boolean;
  checks: DoctorCheck[];
}

const ok = (check: string, detail: string): DoctorCheck => ({ check, status: 'ok', detail, fix: null });
const warn = (check: string, detail: string, fix: string): DoctorCheck => ({ check, status: 'warn', detail, fix });
const problem = (check: string, detail: string, fix: string): DoctorCheck => ({ check, status: 'problem', detail, fix });

async function one<T extends pg.QueryResultRow>(c: pg.ClientBase, sql: string, params: unknown[] = []): Promise<T> {
  const { rows } = await c.query<T>(sql, params);
  if (!rows[0]) throw new Error(`no row from: ${sql.slice(0, 60)}`);
  return rows[0];
}

async function exists(c: pg.ClientBase, relation: string): Promise<boolean> {
  return (await one<{ ok: boolean }>(c, 'SELECT to_regclass($1) IS NOT NULL AS ok', [relation])).ok;
}

async function hasFunction(c: pg.ClientBase, signature: string): Promise<boolean> {
  return (await one<{ ok: boolean }>(c, 'SELECT to_regprocedure($1) IS NOT NULL AS ok', [signature])).ok;
}

async function checkServer(c: pg.ClientBase): Promise<DoctorCheck> {
  const r = await one<{ num: string; version: string }>(
    c,
    `SELECT current_setting('server_version_num') AS num, current_setting('server_version') AS version`,
  );
  try {
    checkServerVersion(Number(r.num), r.version);
    return ok('server', `PostgreSQL ${r.version}`);
  } catch (err) {
    return problem('server', `PostgreSQL ${r.version}`, (err as Error).message);
  }
}

async function checkPgCron(c: pg.ClientBase): Promise<DoctorCheck> {
  const r = await one<{
    version: string | null; available: boolean; preload: string | null; cron_database: string | null;
    database: string; role: string; superuser: boolean;
  }>(
    c,
    `SELECT (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') AS version,
            EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'pg_cron') AS available,
            (SELECT setting FROM pg_catalog.pg_settings WHERE name = 'shared_preload_libraries') AS preload,
            (SELECT setting FROM pg_catalog.pg_settings WHERE name = 'cron.database_name') AS cron_database,
            current_database() AS database, current_user AS role,
            (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) AS superuser`,
  );
  try {
    checkCron({
      installed: r.version !== null, available: r.available, preloadLibraries: r.preload, cronDatabase: r.cron_database,
      database: r.database, canCreate: r.superuser, role: r.role,
    });
  } catch (err) {
    return problem('pg_cron', r.version ? `pg_cron ${r.version} installed` : 'pg_cron is not installed', (err as Error).message);
  }
  if (r.version === null) {
    return warn('pg_cron', 'not installed yet; the migrations create it (this role may)', 'neotoma-ops migrate up');
  }
  const where = r.cron_database === null ? 'cron.database_name not readable by this role' : `cron.database_name = ${r.cron_database}`;
  return ok('pg_cron', `pg_cron ${r.version} installed; ${where}`);
}

async function checkRole(c: pg.ClientBase): Promise<DoctorCheck> {
  const r = await one<{
    role: string; superuser: boolean; bypassrls: boolean; create_schema: boolean; ops_schema: boolean;
    owns_ops: boolean | null; create_in_public: boolean; not_owned: string[] | null; can_schedule: boolean | null;
  }>(
    c,
    `SELECT current_user AS role, r.rolsuper AS superuser, r.rolbypassrls AS bypassrls,
            has_database_privilege(current_database(), 'CREATE') AS create_schema,
            to_regnamespace('neotoma_ops') IS NOT NULL AS ops_schema,
            (SELECT pg_has_role(current_user, n.nspowner, 'USAGE') FROM pg_catalog.pg_namespace n
              WHERE n.nspname = 'neotoma_ops') AS owns_ops,
            has_schema_privilege('public', 'CREATE') AS create_in_public,
            (SELECT array_agg(format('%I.%I', n.nspname, c.relname) ORDER BY c.relname)
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE c.oid IN (to_regclass('public.sources'), to_regclass('public.interpretation_runs'))
                AND NOT pg_has_role(current_user, c.relowner, 'USAGE')) AS not_owned,
            CASE WHEN to_regprocedure('cron.schedule(text,text,text)') IS NOT NULL
                 THEN has_function_privilege('cron.schedule(text,text,text)', 'EXECUTE') END AS can_schedule
       FROM pg_catalog.pg_roles r WHERE r.rolname = current_user`,
  );
  const missing: string[] = [];
  if (!r.ops_schema && !r.create_schema) missing.push(`cannot create schema neotoma_ops (GRANT CREATE ON DATABASE ... TO ${r.role})`);
  if (r.owns_ops === false) missing.push(`does not own schema neotoma_ops (run the migrations as its owner)`);
  if (!r.create_in_public) missing.push(`cannot create objects in schema public (GRANT CREATE ON SCHEMA public TO ${r.role})`);
  if (r.not_owned) missing.push(`does not own ${r.not_owned.join(', ')} (run the migrations as the role that owns Neotoma's tables, on Supabase: postgres)`);
  if (r.can_schedule === false) missing.push(`cannot call cron.schedule (GRANT USAGE ON SCHEMA cron TO ${r.role}; on Supabase this is granted when pg_cron is enabled)`);
  const traits = [r.superuser ? 'superuser' : 'not a superuser', ...(r.bypassrls ? ['BYPASSRLS'] : [])].join(', ');
  if (missing.length > 0) {
    return problem('role', `role ${r.role} (${traits}) ${missing.join('; ')}`, 'Connect as a role that can migrate: see docs/supabase.md, "Which connection for which command".');
  }
  return ok('role', `role ${r.role} (${traits}) can run the migrations: creates in neotoma_ops and public, owns Neotoma's tables, schedules pg_cron jobs`);
}

async function checkMigrations(c: pg.ClientBase): Promise<DoctorCheck> {
  const s = await readMigrationStatus(c);
  const changed = s.sqlFiles.filter((f) => f.state !== 'applied');
  // a check that existing rows break is reported (once) by the integrity check
  const waitingForRows = s.pendingSteps.filter((d) => d.lastSqlstate === '23514');
  const failedSteps = s.pendingSteps.filter((d) => d.lastError !== null && d.lastSqlstate !== '23514');
  if (s.applied.length === 0) {
    return warn('migrations', `neotoma-ops is not installed: ${s.pending.length} migrations to apply`, 'neotoma-ops migrate up');
  }
  if (failedSteps.length > 0) {
    return problem(
      'migrations',
      failedSteps.map((d) => `deferred step "${d.description}" failed: ${d.lastError ?? ''}`).join(' '),
      'Fix the cause named above, then run: neotoma-ops migrate up',
    );
  }
  const pendingWork = [
    ...(s.pending.length ? [`${s.pending.length} migration(s) pending (${s.pending.join(', ')})`] : []),
    ...(changed.length ? [`${changed.length} SQL file(s) new or changed`] : []),
    ...(s.pendingSteps.length > waitingForRows.length ? [`${s.pendingSteps.length - waitingForRows.length} deferred step(s) pending`] : []),
    ...(waitingForRows.length ? [`${waitingForRows.length} check(s) wait for the rows reported below`] : []),
  ];
  if (pendingWork.length > 0) return warn('migrations', pendingWork.join('; '), 'neotoma-ops migrate up');
  return ok('migrations', `${s.applied.length} migrations and ${s.sqlFiles.length} SQL files applied, no deferred step pending`);
}

/** Neotoma v0.2.0's columns that v0.3.0 relies on (as tests/fixtures/neotoma-v0.2.0/schema.sql defines them):
 *  name → [type, NOT NULL]. */
const BASE_COLUMNS: Record<string, Record<string, [string, boolean]>> = {
  'public.sources': {
    id: ['uuid', true], user_id: ['uuid', true], content_hash: ['text', true], mime_type: ['text', true],
    storage_url: ['text', true], file_size: ['bigint', true], original_filename: ['text', false],
    provenance: ['jsonb', true], created_at: ['timestamp with time zone', false],
  },
  'public.interpretation_runs': {
    id: ['uuid', true], user_id: ['uuid', true], source_id: ['uuid', true], interpretation_config: ['jsonb', true],
    status: ['text', true], started_at: ['timestamp with time zone', false], completed_at: ['timestamp with time zone', false],
    error_message: ['text', false], observations_created: ['integer', false], unknown_fields_count: ['integer', false],
    created_at: ['timestamp with time zone', false],
  },
};

async function checkTables(c: pg.ClientBase): Promise<DoctorCheck> {
  const found: string[] = [];
  const wrong: string[] = [];
  for (const [rel, columns] of Object.entries(BASE_COLUMNS)) {
    if (!(await exists(c, rel))) continue;
    found.push(rel);
    const { rows } = await c.query<{ name: string; type: string; not_null: boolean }>(
      `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS not_null
         FROM pg_catalog.pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`,
      [rel],
    );
    const actual = new Map(rows.map((r) => [r.name, r]));
    for (const [name, [type, notNull]] of Object.entries(columns)) {
      const col = actual.get(name);
      if (!col) wrong.push(`${rel}.${name} is missing`);
      else if (col.type !== type) wrong.push(`${rel}.${name} is ${col.type}, not ${type}`);
      else if (notNull && !col.not_null) wrong.push(`${rel}.${name} allows NULL`);
    }
  }
  if (found.includes('public.sources')) {
    const r = await one<{ unique_key: boolean }>(
      c,
      `SELECT EXISTS (
         SELECT 1 FROM pg_catalog.pg_index i
          WHERE i.indrelid = 'public.sources'::regclass AND i.indisunique AND i.indnkeyatts = 2
            AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_catalog.pg_attribute a
                  WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)) = ARRAY['content_hash', 'user_id']) AS unique_key`,
    );
    if (!r.unique_key) wrong.push('public.sources has no UNIQUE (user_id, content_hash): content dedup per user is missing');
  }
  if (wrong.length > 0) {
    return problem('tables', wrong.join('; '), "Bring the table to Neotoma v0.2.0's definition (docs/upgrade.md, \"Neotoma's tables\") before migrating.");
  }
  if (found.length === 0) return ok('tables', 'sources and interpretation_runs are absent: the migrations create them as Neotoma v0.2.0 does');
  return ok('tables', `${found.join(' and ')} have Neotoma v0.2.0's columns, types and keys`);
}

/** The checks the migrations add NOT VALID to Neotoma's existing tables (their own text, read from the files). */
export async function plannedChecks(dir = migrationsDir): Promise<Array<{ table: string; constraint: string; predicate: string }>> {
  const out: Array<{ table: string; constraint: string; predicate: string }> = [];
  for (const name of (await readdir(dir)).filter((n) => n.endsWith('.sql')).sort()) {
    const up = (await readFile(path.join(dir, name), 'utf8')).split(/^-- Down Migration/m)[0]!;
    for (const m of up.matchAll(/ALTER TABLE (public\.\w+) ADD CONSTRAINT (\w+)\s+CHECK (\(.+\)) NOT VALID;/g)) {
      out.push({ table: m[1]!, constraint: m[2]!, predicate: m[3]! });
    }
  }
  return out;
}

/** Before the upgrade: rows that break the checks it will add (they do not stop it; fixing them first is cleaner). */
async function checkIntegrity(c: pg.ClientBase): Promise<DoctorCheck> {
  const broken: string[] = [];
  for (const k of await plannedChecks()) {
    if (!(await exists(c, k.table))) continue;
    // the table and the expression come from the project's own migration files, never from input
    const n = await one<{ n: string }>(c, `SELECT count(*) AS n FROM ${k.table} WHERE NOT ${k.predicate}`);
    if (Number(n.n) > 0) broken.push(`${n.n} row(s) break ${k.constraint} ${k.predicate}`);
  }
  if (broken.length > 0) {
    return problem(
      'integrity',
      `public.sources: ${broken.join('; ')}`,
      'List them with SELECT * FROM public.sources WHERE NOT <expression>; correct or delete them, then run neotoma-ops migrate up (it validates the checks).',
    );
  }
  return ok('integrity', 'every row passes the checks v0.3.0 adds');
}

/** Before the upgrade: objects of the database that the SQL files would replace (the upgrade refuses them). */
async function checkCollisions(c: pg.ClientBase): Promise<DoctorCheck> {
  const clash = await sqlFileCollisions(c, await plannedSqlFiles(), new Map());
  if (clash.length > 0) {
    return problem('collisions', clash.join('; '), 'neotoma-ops never replaces what it did not create: rename or drop yours (e.g. ALTER FUNCTION … RENAME TO …), or install it in another database.');
  }
  return ok('collisions', 'nothing in the database has the name of an object neotoma-ops creates');
}

/** Before the upgrade: what it will change on Neotoma's tables. */
async function checkPrivilegesBefore(c: pg.ClientBase): Promise<DoctorCheck> {
  const { rows } = await c.query<{ grant: string }>(
    `SELECT format('%s on %s: %s', g.grantee::regrole, g.rel, string_agg(g.privilege_type, ', ' ORDER BY g.privilege_type)) AS grant
       FROM (SELECT a.grantee, c.oid::regclass::text AS rel, a.privilege_type
               FROM pg_catalog.pg_class c, LATERAL pg_catalog.aclexplode(c.relacl) a
              WHERE c.oid IN (to_regclass('public.sources'), to_regclass('public.interpretation_runs'))
                AND a.grantee IN (SELECT oid FROM pg_catalog.pg_roles WHERE rolname IN ('anon', 'authenticated', 'service_role'))
                AND NOT (a.grantee = 'authenticated'::regrole AND a.privilege_type = 'SELECT')
                AND NOT (a.grantee = 'service_role'::regrole AND a.privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE'))) g
      GROUP BY g.grantee, g.rel ORDER BY 1`,
  );
  if (rows.length === 0) return ok('privileges', 'nothing to narrow on Neotoma\'s tables');
  return warn(
    'privileges',
    `the upgrade revokes, on Neotoma's tables: ${rows.map((r) => r.grant).join('; ')}`,
    'Nothing to do unless a client relies on them: see docs/upgrade.md, "Grants"',
  );
}

/**
 * Once installed: everything not as neotoma-ops left it, judged in the database by what it recorded it owns
 * (neotoma_ops.doctor()): one check per problem, or one `record` check when there is none.
 */
async function checkRecord(c: pg.ClientBase): Promise<DoctorCheck[]> {
  const { rows } = await c.query<{ kind: string; problem: string; fix: string }>('SELECT kind, problem, fix FROM neotoma_ops.doctor(true)');
  if (rows.length === 0) {
    const n = await one<{ n: string }>(c, 'SELECT count(*) AS n FROM neotoma_ops.owned_objects WHERE definition IS NOT NULL');
    return [ok('record', `the ${n.n} objects neotoma-ops recorded are as it left them; grants, pg_cron jobs, counters and checks are right`)];
  }
  // a plan promising more than Storage takes is refused up front: worth fixing, not broken
  return rows.map((r) => (r.kind === 'storage limit' ? warn : problem)(r.kind, r.problem, r.fix));
}

const CREATE_BUCKET = "insert into storage.buckets (id, name) values ('sources', 'sources'); (SQL editor) or Dashboard → Storage → New bucket, private";

/** Supabase Storage, where the database has it: the bucket uploads go to, and whether Storage can hold what the plans allow. */
async function checkStorage(c: pg.ClientBase): Promise<DoctorCheck> {
  if (!(await exists(c, 'storage.buckets'))) {
    return ok('storage', 'no Supabase Storage in this database: STORAGE_BACKEND of the worker decides where files go');
  }
  const { rows } = await c.query<{ file_size_limit: string | null }>(`SELECT file_size_limit::text FROM storage.buckets WHERE id = 'sources'`);
  if (rows.length === 0) {
    return problem('storage', 'Supabase Storage has no bucket "sources": every upload would fail', `${CREATE_BUCKET}; then neotoma-ops requeue --all-failed`);
  }
  const bucketLimit = rows[0]!.file_size_limit === null ? 'no file_size_limit of its own' : `file_size_limit ${rows[0]!.file_size_limit} bytes`;
  if (!(await exists(c, 'neotoma_ops.storage_settings'))) {
    return ok('storage', `bucket "sources" exists (${bucketLimit}); after the upgrade doctor compares Storage's limits with the plans'`);
  }
  const global = await one<{ limit_bytes: string | null }>(c, 'SELECT upload_limit_bytes::text AS limit_bytes FROM neotoma_ops.storage_settings');
  const known = `bucket "sources" exists (${bucketLimit}); global upload limit ${global.limit_bytes === null ? 'not recorded' : `${global.limit_bytes} bytes`}`;
  if (global.limit_bytes === null) {
    return warn('storage', `${known}`, "Record the project's global upload limit (Dashboard → Storage → Settings; 50 MB on the free plan): UPDATE neotoma_ops.storage_settings SET upload_limit_bytes = 52428800;");
  }
  return ok('storage', `${known} (a plan allowing more: a "storage limit" line)`);
}

/** The Edge Function path (pg_cron → pg_net → upload-queue-processor): possible here, configured, scheduled? */
async function checkEdgeFunction(c: pg.ClientBase): Promise<DoctorCheck> {
  const r = await one<{ net: boolean; vault: boolean; scheduled: boolean | null }>(
    c,
    `SELECT to_regprocedure('net.http_post(text,jsonb,jsonb,jsonb,integer)') IS NOT NULL AS net,
            to_regclass('vault.secrets') IS NOT NULL AS vault,
            CASE WHEN to_regclass('cron.job') IS NOT NULL
                 THEN EXISTS (SELECT 1 FROM cron.job WHERE jobname = 'upload-queue-edge-function') END AS scheduled`,
  );
  if (!r.net) {
    return ok('edge function', 'pg_net is not installed: pg_cron cannot call the Edge Function; run neotoma-ops worker (or enable pg_net to use the function)');
  }
  if (!r.vault) {
    return warn('edge function', 'pg_net is installed but Supabase Vault is not: the function\'s URL and key are read from Vault', 'Enable the supabase_vault extension, or run neotoma-ops worker instead.');
  }
  const { rows } = await c.query<{ name: string }>(
    `SELECT name FROM vault.secrets WHERE name IN ('neotoma_ops_project_url', 'neotoma_ops_function_key') ORDER BY name`,
  );
  const stored = rows.length === 2;
  const schedule = "SELECT public.schedule_upload_queue_edge_function('https://PROJECT.supabase.co', '<secret or service-role key>');";
  if (r.scheduled && !stored) {
    return problem('edge function', 'the upload-queue-edge-function job is scheduled but its Vault secrets are not stored: it fails every minute', schedule);
  }
  if (r.scheduled) return ok('edge function', 'pg_cron calls the Edge Function every minute (its runs: cron jobs, and net._http_response)');
  if (stored) return warn('edge function', 'the Edge Function\'s secrets are in Vault but no job calls it', `${schedule} (or run neotoma-ops worker instead)`);
  return ok('edge function', 'pg_net and Vault are installed: the Edge Function can be scheduled (docs/supabase.md, step 6), or run neotoma-ops worker');
}

type Check = (c: pg.ClientBase) => Promise<DoctorCheck | DoctorCheck[]>;
const ENVIRONMENT: Array<[string, Check]> = [
  ['server', checkServer], ['pg_cron', checkPgCron], ['role', checkRole], ['migrations', checkMigrations],
];
const BEFORE_INSTALL: Array<[string, Check]> = [
  ['tables', checkTables], ['integrity', checkIntegrity], ['collisions', checkCollisions], ['privileges', checkPrivilegesBefore],
];
const PLATFORM: Array<[string, Check]> = [['storage', checkStorage], ['edge function', checkEdgeFunction]];

/**
 * Every check, in one READ ONLY transaction (nothing can be written, and it works through a transaction-mode
 * pooler); a check that fails to run is itself reported as a problem, and the others still run.
 */
export async function collectDoctor(c: pg.ClientBase): Promise<DoctorReport> {
  const checks: DoctorCheck[] = [];
  const who = await one<{ database: string; role: string }>(c, 'SELECT current_database() AS database, current_user AS role');
  await c.query('BEGIN READ ONLY');
  try {
    await c.query(`SET LOCAL statement_timeout = '120s'`);
    const installed = await hasFunction(c, 'neotoma_ops.doctor(boolean)');
    const plan: Array<[string, Check]> = [...ENVIRONMENT, ...(installed ? [['record', checkRecord] as [string, Check]] : BEFORE_INSTALL), ...PLATFORM];
    for (const [name, run] of plan) {
      await c.query('SAVEPOINT doctor_check');
      try {
        checks.push(...[await run(c)].flat());
        await c.query('RELEASE SAVEPOINT doctor_check');
      } catch (err) {
        await c.query('ROLLBACK TO SAVEPOINT doctor_check');
        checks.push(problem(name, `could not be checked: ${(err as Error).message}`, 'Run doctor as the role that runs the migrations.'));
      }
    }
  } finally {
    await c.query('ROLLBACK');
  }
  return {
    generated_at: new Date().toISOString(),
    database: who.database,
    role: who.role,
    ok: checks.every((k) => k.status !== 'problem'),
    checks,
  };
}

/** One row per check (CHECK, STATUS, DETAIL), the fix under it; details are never cut. */
export function renderDoctor(r: DoctorReport): string {
  const mark = { ok: 'ok', warn: 'WARN', problem: 'PROBLEM' } as const;
  const w1 = Math.max(5, ...r.checks.map((k) => k.check.length));
  const w2 = 7;
  const row = (a: string, b: string, c: string): string => `${a.padEnd(w1)}  ${b.padEnd(w2)}  ${c}`.trimEnd();
  const lines = [`neotoma-ops doctor: database ${r.database} as ${r.role}`, '', row('CHECK', 'STATUS', 'DETAIL')];
  for (const k of r.checks) {
    lines.push(row(k.check, mark[k.status], k.detail));
    if (k.fix !== null) lines.push(row('', '', `fix: ${k.fix}`));
  }
  const problems = r.checks.filter((k) => k.status === 'problem').length;
  lines.push('', problems === 0 ? 'No problem found.' : `${problems} problem(s) found.`);
  return lines.join('\n');
}
