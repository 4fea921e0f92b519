import { createHash, randomUUID } from 'node:crypto';
import os from 'node:os';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type pg from 'pg';
import { runner } from 'node-pg-migrate';
import { connect } from './db/connect.js';
import { preflight } from './db/preflight.js';
import { OperationalError } from './errors.js';
import { migrationsDir, projectRoot, sqlFunctionsDir, sqlTriggersDir, sqlViewsDir } from './paths.js';

/**
 * `migrate` holds a lease (a row of neotoma_ops.migrate_lock, renewed by a second connection) for its whole run,
 * so concurrent runs queue behind each other. A row, not a session advisory lock: it works through a
 * transaction-mode pooler (which hands each transaction to any server connection) and can never be left behind
 * by a session that went away: a lease not renewed for LEASE_SECONDS passes to the next run.
 */
const MIGRATE_LOCK_KEY = 4_747_120_003; // transaction-level only: serializes creating the lease table
const LEASE_SECONDS = 120;
const LEASE_RENEW_MS = 20_000;
const MIGRATIONS_SCHEMA = 'neotoma_ops';
const MIGRATIONS_TABLE = 'pgmigrations';
const SQL_FILES_TABLE = 'neotoma_ops.applied_sql_files';
const DEFERRED_STEPS_TABLE = 'neotoma_ops.deferred_steps';
const SQL_FILE_OBJECTS_TABLE = 'neotoma_ops.sql_file_objects';

/**
 * Migrations and SQL files take their table locks with this lock_timeout: on a live database a writer queued
 * behind a lock request waits at most this long, and a migration that cannot get its lock (a long transaction
 * holds the table) is rolled back and tried again instead of stalling every writer behind it.
 */
const DEFAULT_LOCK_TIMEOUT_MS = 500;
/** Deferred steps take only locks that writers do not queue behind (index builds, validation): wait longer. */
const DEFERRED_LOCK_TIMEOUT_MS = 60_000;
const LOCK_ATTEMPTS = 40;
const RETRYABLE = new Set(['55P03', '40P01']); // lock_not_available, deadlock_detected

export interface MigrateOptions {
  /** Down: how many migrations to revert (default 1). Up: all pending. */
  count?: number;
  log?: (line: string) => void;
  /** Defaults to the package's migrations/ folder. */
  migrationsDir?: string;
  /** Folders of idempotent SQL files applied after the migrations; defaults to sql/functions, sql/views, sql/triggers. */
  repeatableDirs?: string[];
  /** lock_timeout of migrations and SQL files, in ms (default 500): the longest a writer waits behind them. */
  lockTimeoutMs?: number;
}

const REPEATABLE_DIRS = [sqlFunctionsDir, sqlViewsDir, sqlTriggersDir];

function folders(options: MigrateOptions): { migrations: string; repeatable: string[] } {
  return {
    migrations: options.migrationsDir ?? migrationsDir,
    repeatable: options.repeatableDirs ?? REPEATABLE_DIRS,
  };
}

export interface MigrateResult {
  migrations: string[];
  sqlFiles: string[];
  /** Deferred steps completed by this run (index builds, validations, backfills), by description. */
  deferredSteps: string[];
  /** Paragraphs the operator must act on; the upgrade itself is complete (e.g. rows that break a new check). */
  warnings: string[];
}

export interface SqlFileState {
  file: string;
  state: 'applied' | 'changed' | 'pending';
}

export interface DeferredStepState {
  migration: string;
  description: string;
  lastError: string | null;
  /** SQLSTATE of the last failure: 23514 = existing rows break a new check (a warning, not a failure). */
  lastSqlstate: string | null;
}

export interface MigrationStatus {
  applied: string[];
  pending: string[];
  sqlFiles: SqlFileState[];
  /** Deferred steps not completed yet: `migrate up` runs them. */
  pendingSteps: DeferredStepState[];
}

/** A migration or SQL file that failed, located by file and line. */
export class MigrationFileError extends OperationalError {
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    readonly pgMessage: string,
    cause: unknown,
  ) {
    super(`${file}${line ? `:${line}` : ''}: ${pgMessage}. Nothing from this file (or, for SQL files, its folder) was applied; fix it and run migrate again.`, {
      cause,
    });
  }
}

function lineAt(text: string, offset: number): number {
  return text.slice(0, Math.max(0, offset)).split('\n').length;
}

function relative(file: string): string {
  return path.relative(projectRoot, file);
}

/** The .sql files under `dir`, subfolders included, in path order. */
async function listSqlFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = (await readdir(dir, { recursive: true })) as string[];
  } catch {
    return [];
  }
  return names
    .filter((n) => n.endsWith('.sql'))
    .sort()
    .map((n) => path.join(dir, n));
}

/** Migration names (file names without .sql) in the order they apply. */
async function listMigrations(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n.endsWith('.sql')).sort().map((n) => n.replace(/\.sql$/, ''));
}

/**
 * The migration a repeatable file belongs to: the one named after the file's area, the first folder under its root
 * (`sql/functions/quotas/internal/x.sql` → `NNNN_quotas`). The file is applied once that migration is, and
 * `migrate down` reverting that migration drops what the file created. A file directly in a root has no area:
 * null (it then belongs to the newest migration applied when it is first applied).
 */
export function owningMigration(root: string, file: string, migrations: string[]): string | null {
  const parts = path.relative(root, file).split(path.sep);
  if (parts.length < 2) return null;
  const area = parts[0]!;
  const owner = migrations.find((m) => m.replace(/^\d+_/, '') === area);
  if (!owner) {
    throw new OperationalError(
      `${relative(path.join(root, area))}/ is named after no migration: the folders under ${relative(root)}/ take the name ` +
        `of the migration that creates what their files need (migrations/NNNN_${area}.sql). Rename the folder.`,
    );
  }
  return owner;
}

/** Each folder in turn (functions, views, triggers), files in path order. */
export async function listRepeatableFiles(dirs: string[] = REPEATABLE_DIRS): Promise<string[]> {
  const files: string[] = [];
  for (const dir of dirs) files.push(...(await listSqlFiles(dir)));
  return files;
}

async function checksum(file: string): Promise<string> {
  return createHash('sha256').update(await readFile(file)).digest('hex');
}

/**
 * The runner's own tables. deferred_steps holds work a migration declares but that must not run inside its
 * transaction: CREATE INDEX CONCURRENTLY, VALIDATE CONSTRAINT, batched backfills. Each step is one statement
 * run on its own (no transaction block) after every migration and SQL file; a `repeat` step runs again until it
 * returns NULL, taking its previous result as $1 when it names a $1 (a cursor). `index_name` names the index a step builds, so that an
 * invalid index left by an interrupted build is dropped before the next try.
 */
async function ensureBookkeeping(client: pg.Client): Promise<void> {
  const objects = await client.query<{ ok: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS ok`, [SQL_FILE_OBJECTS_TABLE]);
  await client.query(`
    CREATE SCHEMA IF NOT EXISTS neotoma_ops;
    CREATE TABLE IF NOT EXISTS ${SQL_FILES_TABLE} (
      file       text PRIMARY KEY,
      checksum   text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now(),
      migration  text
    );
    COMMENT ON COLUMN ${SQL_FILES_TABLE}.migration IS
      'The migration this file belongs to: reverting it drops what the file created (neotoma_ops.sql_file_objects).';
    ALTER TABLE ${SQL_FILES_TABLE} ENABLE ROW LEVEL SECURITY;
    CREATE TABLE IF NOT EXISTS ${DEFERRED_STEPS_TABLE} (
      migration    text        NOT NULL,
      position     integer     NOT NULL,
      description  text        NOT NULL,
      statement    text        NOT NULL,
      repeat       boolean     NOT NULL DEFAULT false,
      index_name   text,
      cursor       text,
      attempts     integer     NOT NULL DEFAULT 0,
      last_error   text,
      last_sqlstate text,
      created_at   timestamptz NOT NULL DEFAULT now(),
      completed_at timestamptz,
      PRIMARY KEY (migration, position)
    );
    ALTER TABLE ${DEFERRED_STEPS_TABLE} ENABLE ROW LEVEL SECURITY;
    CREATE TABLE IF NOT EXISTS ${SQL_FILE_OBJECTS_TABLE} (
      file        text NOT NULL,
      object_type text NOT NULL CHECK (object_type IN ('function', 'view', 'trigger')),
      identity    text NOT NULL,
      PRIMARY KEY (object_type, identity)
    );
    ALTER TABLE ${SQL_FILE_OBJECTS_TABLE} ENABLE ROW LEVEL SECURITY;`);
  // files applied before objects were recorded are applied again once, so that every object gets its file
  if (!objects.rows[0]?.ok && (await appliedChecksums(client)).size > 0) await client.query(`DELETE FROM ${SQL_FILES_TABLE}`);
}

/**
 * Every function, view (its rule) and trigger outside the system schemas, with the version of its catalog row
 * (ctid: CREATE OR REPLACE, GRANT and REVOKE write a new row version, so an unchanged object re-created counts too).
 */
async function catalogVersions(client: pg.Client): Promise<Map<string, string>> {
  const { rows } = await client.query<{ object_type: string; identity: string; version: string; mine: boolean }>(
    `SELECT 'function' AS object_type, format('%I.%I(%s)', n.nspname, p.proname, pg_catalog.oidvectortypes(p.proargtypes)) AS identity,
            p.ctid::text AS version, p.xmin = pg_catalog.pg_current_xact_id()::xid AS mine
       FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
     UNION ALL
     SELECT 'view', format('%I.%I', n.nspname, c.relname), r.ctid::text, r.xmin = pg_catalog.pg_current_xact_id()::xid
       FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_class c ON c.oid = r.ev_class
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'v' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
     UNION ALL
     SELECT 'trigger', format('%I ON %I.%I', t.tgname, n.nspname, c.relname), t.ctid::text,
            t.xmin = pg_catalog.pg_current_xact_id()::xid
       FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      WHERE NOT t.tgisinternal`,
  );
  // a row version this transaction did not write is another session's work (a concurrent CREATE OR REPLACE
  // elsewhere on a live database): never attributed to a file, so never dropped by `migrate down`
  return new Map(rows.map((r) => [`${r.object_type}\t${r.identity}`, r.mine ? r.version : 'not written here']));
}

/**
 * Records what the file just applied defines: every function, view and trigger whose catalog row it wrote
 * (compared with `before`, taken just before the file ran). What the file defined before and no longer does is
 * dropped, so a renamed function or a changed signature leaves nothing behind. `migrate down`, `doctor` and the
 * privilege rules know the project's objects from this table.
 */
async function recordFileObjects(client: pg.Client, file: string, before: Map<string, string>): Promise<void> {
  const written = [...(await catalogVersions(client))].filter(([key, version]) => before.get(key) !== version).map(([key]) => key.split('\t'));
  await client.query(
    `INSERT INTO ${SQL_FILE_OBJECTS_TABLE} AS o (file, object_type, identity)
     SELECT $1, t, i FROM unnest($2::text[], $3::text[]) AS w (t, i)
     ON CONFLICT (object_type, identity) DO UPDATE SET file = EXCLUDED.file`,
    [file, written.map((w) => w[0]), written.map((w) => w[1])],
  );
  const { rows: gone } = await client.query<{ object_type: string; identity: string }>(
    `DELETE FROM ${SQL_FILE_OBJECTS_TABLE}
      WHERE file = $1 AND (object_type, identity) NOT IN (SELECT * FROM unnest($2::text[], $3::text[]))
     RETURNING object_type, identity`,
    [file, written.map((w) => w[0]), written.map((w) => w[1])],
  );
  await dropObjects(client, gone);
}

/**
 * Drops recorded objects that still exist: triggers first, then views, then the functions they may call; within
 * a kind by identity, so the order never depends on how a query happened to return the rows.
 */
async function dropObjects(client: pg.Client, objects: Array<{ object_type: string; identity: string }>): Promise<void> {
  const order = ['trigger', 'view', 'function'];
  const sorted = [...objects].sort(
    (a, b) => order.indexOf(a.object_type) - order.indexOf(b.object_type) || (a.identity < b.identity ? -1 : a.identity > b.identity ? 1 : 0),
  );
  for (const o of sorted) {
    // compared by the same identity text as recorded (no parsing of it)
    const exists = await client.query<{ ok: boolean }>(
      o.object_type === 'function'
        ? `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                           WHERE format('%I.%I(%s)', n.nspname, p.proname, pg_catalog.oidvectortypes(p.proargtypes)) = $1) AS ok`
        : o.object_type === 'view'
          ? `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                             WHERE c.relkind = 'v' AND format('%I.%I', n.nspname, c.relname) = $1) AS ok`
          : `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
                              JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                             WHERE format('%I ON %I.%I', t.tgname, n.nspname, c.relname) = $1) AS ok`,
      [o.identity],
    );
    if (!exists.rows[0]?.ok) continue;
    // identities were written by format('%I…') from the catalog: quoted already, never input
    await client.query(`DROP ${o.object_type === 'function' ? 'FUNCTION' : o.object_type === 'view' ? 'VIEW' : 'TRIGGER'} ${o.identity}`);
  }
}

/** Files of `dir` that were applied once and are gone now: what they defined is dropped and forgotten. */
async function dropObjectsOfRemovedFiles(client: pg.Client, dir: string, present: string[], log: (line: string) => void): Promise<void> {
  const prefix = `${relative(dir)}${path.sep}`;
  const { rows } = await client.query<{ file: string; object_type: string; identity: string }>(
    `SELECT file, object_type, identity FROM ${SQL_FILE_OBJECTS_TABLE}
      WHERE starts_with(file, $1) AND NOT (file = ANY ($2::text[]))`,
    [prefix, present],
  );
  if (rows.length === 0) return;
  await dropObjects(client, rows);
  const files = [...new Set(rows.map((r) => r.file))];
  await client.query(`DELETE FROM ${SQL_FILE_OBJECTS_TABLE} WHERE file = ANY ($1::text[])`, [files]);
  await client.query(`DELETE FROM ${SQL_FILES_TABLE} WHERE file = ANY ($1::text[])`, [files]);
  for (const f of files) log(`removed what ${f} defined (the file is gone)`);
}

/** The lock_timeout of this run's migrations and SQL files (set per transaction, never on the session). */
const lockTimeouts = new WeakMap<pg.Client, number>();

/**
 * What every transaction of the run starts with: its lock_timeout, and no statement_timeout (a role default, as
 * Supabase sets some, must not cut a long backfill short). SET LOCAL: through a transaction-mode pooler a
 * session SET would stay behind on a server connection that other clients get next.
 */
function transactionSettings(client: pg.Client, lockTimeoutMs = lockTimeouts.get(client) ?? DEFAULT_LOCK_TIMEOUT_MS): string {
  return `SET LOCAL lock_timeout = ${Math.max(1, Math.trunc(lockTimeoutMs))}; SET LOCAL statement_timeout = 0`;
}

function errorCode(err: unknown): string | undefined {
  return (err as { code?: string } | null)?.code;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Sessions with the oldest open transactions: what keeps a lock from being granted. */
async function describeBlockers(client: pg.Client): Promise<string> {
  const { rows } = await client.query<{ pid: number; app: string; state: string; age: string; query: string }>(
    `SELECT pid, coalesce(nullif(application_name, ''), '?') AS app, coalesce(state, '?') AS state,
            date_trunc('second', now() - xact_start)::text AS age, left(query, 80) AS query
       FROM pg_catalog.pg_stat_activity
      WHERE xact_start IS NOT NULL AND pid <> pg_catalog.pg_backend_pid() AND datname = current_database()
      ORDER BY xact_start LIMIT 5`,
  );
  if (rows.length === 0) return 'no other open transaction was seen';
  return rows.map((r) => `pid ${r.pid} (${r.app}, ${r.state}, open ${r.age}: ${r.query})`).join('; ');
}

/**
 * Runs `attempt` again while it fails for want of a lock (lock_timeout) or in a deadlock: each failure rolled
 * back its own transaction, so trying again is safe. Gives up with a paragraph naming what holds the locks.
 */
async function withLockRetry<T>(client: pg.Client, what: string, attempt: () => Promise<T>, log: (line: string) => void): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      const code = errorCode(err) ?? errorCode((err as { cause?: unknown }).cause);
      if (!code || !RETRYABLE.has(code)) throw err;
      if (n >= LOCK_ATTEMPTS) {
        throw new OperationalError(
          `${what}: could not take its table locks in ${LOCK_ATTEMPTS} tries (lock_timeout each time, so writers never ` +
            `waited long behind it). Long transactions hold them: ${await describeBlockers(client)}. ` +
            'Let them finish (or end them), then run `neotoma-ops migrate up` again; it resumes where it stopped.',
          { cause: err },
        );
      }
      log(`${what}: lock not available (${code}), trying again (${n}/${LOCK_ATTEMPTS})`);
      await sleep(Math.min(250 * n, 2000));
    }
  }
}

async function appliedChecksums(client: pg.ClientBase): Promise<Map<string, string>> {
  const exists = await client.query<{ ok: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS ok`, [SQL_FILES_TABLE]);
  if (!exists.rows[0]?.ok) return new Map();
  const { rows } = await client.query<{ file: string; checksum: string }>(`SELECT file, checksum FROM ${SQL_FILES_TABLE}`);
  return new Map(rows.map((r) => [r.file, r.checksum]));
}

/**
 * Applies every function and trigger file whose content changed since it was last applied. Each folder is
 * applied in ONE transaction: a writer sees either none of the triggers of sql/triggers or all of them (the
 * usage counters of a user must never be born while the sources trigger is missing), and the functions they
 * call are committed before them.
 */
async function applyRepeatableFiles(
  client: pg.Client,
  dirs: string[],
  migrationsDir: string,
  log: (line: string) => void,
): Promise<string[]> {
  const known = await appliedChecksums(client);
  const migrations = await listMigrations(migrationsDir);
  const applied = new Set(await appliedMigrations(client));
  const newest = migrations.filter((m) => applied.has(m)).at(-1) ?? null;
  const done: string[] = [];
  for (const dir of dirs) {
    const changed: Array<{ name: string; sum: string; text: string; migration: string | null }> = [];
    const present: string[] = [];
    for (const file of await listSqlFiles(dir)) {
      const owner = owningMigration(dir, file, migrations);
      if (owner !== null && !applied.has(owner)) continue; // what it needs is not there yet
      const name = relative(file);
      present.push(name);
      const sum = await checksum(file);
      if (known.get(name) !== sum) changed.push({ name, sum, text: await readFile(file, 'utf8'), migration: owner ?? newest });
    }
    const removed = await client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM ${SQL_FILE_OBJECTS_TABLE} WHERE starts_with(file, $1) AND NOT (file = ANY ($2::text[]))`,
      [`${relative(dir)}${path.sep}`, present],
    );
    if (changed.length === 0 && (removed.rows[0]?.n ?? 0) === 0) continue;
    await withLockRetry(client, relative(dir), async () => {
      await client.query('BEGIN');
      let current = changed[0] ?? { name: relative(dir), sum: '', text: '' };
      try {
        // as pg_dump does: files may then reference functions of files that sort after them
        await client.query(`SET LOCAL check_function_bodies = off; ${transactionSettings(client)}`);
        await dropObjectsOfRemovedFiles(client, dir, present, log);
        for (const f of changed) {
          current = f;
          const before = await catalogVersions(client);
          await client.query(f.text);
          await recordFileObjects(client, f.name, before);
          await client.query(
            `INSERT INTO ${SQL_FILES_TABLE} (file, checksum, migration) VALUES ($1, $2, $3)
             ON CONFLICT (file) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now(),
                                              migration = coalesce(${SQL_FILES_TABLE}.migration, EXCLUDED.migration)`,
            [f.name, f.sum, f.migration],
          );
        }
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        if (RETRYABLE.has(errorCode(err) ?? '')) throw err;
        const e = err as { message?: string; position?: string };
        throw new MigrationFileError(
          current.name,
          e.position ? lineAt(current.text, Number(e.position) - 1) : undefined,
          e.message ?? String(err),
          err,
        );
      }
    }, log);
    for (const f of changed) log(`applied ${f.name}`);
    done.push(...changed.map((f) => f.name));
  }
  return done;
}

/** Applied migrations in the order they were applied (empty before the first). */
async function appliedMigrations(client: pg.ClientBase): Promise<string[]> {
  const table = `${MIGRATIONS_SCHEMA}.${MIGRATIONS_TABLE}`;
  const exists = await client.query<{ ok: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS ok`, [table]);
  if (!exists.rows[0]?.ok) return [];
  return (await client.query<{ name: string }>(`SELECT name FROM ${table} ORDER BY run_on, id`)).rows.map((r) => r.name);
}

/**
 * Before `migrate down` reverts `reverting`: drops what the repeatable files belonging to those migrations created
 * (recorded signatures: triggers, then views, then functions), and forgets those files, so that the down sections
 * find their tables free and the next `up` applies the files again. One transaction.
 */
async function dropObjectsOfMigrations(client: pg.Client, reverting: string[], log: (line: string) => void): Promise<void> {
  if (reverting.length === 0 || (await appliedChecksums(client)).size === 0) return;
  await withLockRetry(client, 'migrate down', () => inTransaction(client, lockTimeouts.get(client) ?? DEFAULT_LOCK_TIMEOUT_MS, async () => {
    const { rows } = await client.query<{ file: string; object_type: string; identity: string }>(
      `SELECT o.file, o.object_type, o.identity
         FROM ${SQL_FILE_OBJECTS_TABLE} o JOIN ${SQL_FILES_TABLE} f USING (file)
        WHERE f.migration = ANY ($1::text[])`,
      [reverting],
    );
    await dropObjects(client, rows);
    const { rows: files } = await client.query<{ file: string }>(
      `DELETE FROM ${SQL_FILES_TABLE} WHERE migration = ANY ($1::text[]) RETURNING file`,
      [reverting],
    );
    await client.query(`DELETE FROM ${SQL_FILE_OBJECTS_TABLE} WHERE file = ANY ($1::text[])`, [files.map((f) => f.file)]);
    if (files.length > 0) log(`dropped what the ${files.length} SQL file(s) of the migration(s) being reverted created`);
  }), log);
}

/**
 * After the last migration is reverted: the runner's own tables go too (the lease table last, by the caller), so
 * that a full `migrate down` leaves the database as it was before the first `up`.
 */
async function dropBookkeeping(client: pg.Client, log: (line: string) => void): Promise<void> {
  await client.query(`DROP TABLE IF EXISTS ${SQL_FILE_OBJECTS_TABLE}, ${SQL_FILES_TABLE}, ${DEFERRED_STEPS_TABLE},
                                          ${MIGRATIONS_SCHEMA}.${MIGRATIONS_TABLE}`);
  log('every migration is reverted: removed the migration history (neotoma_ops)');
}

interface DeferredStepRow {
  migration: string;
  position: number;
  description: string;
  statement: string;
  repeat: boolean;
  index_name: string | null;
  cursor: string | null;
}

/** Marks a deferred step done, or records its error; always outside any transaction of the step itself. */
async function recordStep(
  client: pg.Client,
  step: DeferredStepRow,
  fields: { done?: boolean; cursor?: string | null; error?: string | null; sqlstate?: string | null },
): Promise<void> {
  await client.query(
    `UPDATE ${DEFERRED_STEPS_TABLE}
        SET completed_at = CASE WHEN $3 THEN now() END, cursor = $4, last_error = $5, last_sqlstate = $6,
            attempts = attempts + 1
      WHERE migration = $1 AND position = $2`,
    [step.migration, step.position, fields.done ?? false, fields.cursor ?? step.cursor, fields.error ?? null, fields.sqlstate ?? null],
  );
}

/** `fn` in a transaction of its own that starts with the run's settings and the given lock_timeout. */
async function inTransaction<T>(client: pg.Client, lockTimeoutMs: number, fn: () => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    await client.query(transactionSettings(client, lockTimeoutMs));
    const result = await fn();
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** One step: an index build first drops an invalid leftover; a repeat step runs until it returns NULL. */
async function runDeferredStep(client: pg.Client, step: DeferredStepRow, log: (line: string) => void): Promise<void> {
  if (step.index_name) {
    const { rows } = await client.query<{ valid: boolean | null; name: string | null }>(
      `SELECT i.indisvalid AS valid, to_regclass($1)::text AS name
         FROM (SELECT 1) one LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = to_regclass($1)`,
      [step.index_name],
    );
    const found = rows[0];
    if (found?.valid === false && found.name) {
      log(`${step.description}: dropping the invalid index an interrupted build left`);
      await client.query(`DROP INDEX CONCURRENTLY IF EXISTS ${found.name}`);
    }
  }
  if (step.index_name) {
    // CREATE INDEX CONCURRENTLY runs outside any transaction block; it takes no lock writers queue behind
    await client.query(step.statement);
    return;
  }
  if (!step.repeat) {
    await inTransaction(client, DEFERRED_LOCK_TIMEOUT_MS, () => client.query(step.statement));
    return;
  }
  let cursor = step.cursor;
  const takesCursor = /\$1\b/.test(step.statement);
  for (;;) {
    const { rows } = await inTransaction(client, DEFERRED_LOCK_TIMEOUT_MS, () =>
      client.query<Record<string, string | null>>(step.statement, takesCursor ? [cursor] : []),
    );
    const next = rows[0] ? Object.values(rows[0])[0] ?? null : null;
    if (next === null) return;
    cursor = next;
    await recordStep(client, step, { cursor });
  }
}

/**
 * Runs the deferred steps not done yet, in migration order. A step that finds existing rows breaking a new
 * check (23514) becomes a warning: the upgrade is complete and the check already guards new rows. Any other
 * failure stops `migrate up` with the step named; the next run resumes it.
 */
async function runDeferredSteps(client: pg.Client, log: (line: string) => void): Promise<{ done: string[]; warnings: string[] }> {
  const { rows: steps } = await client.query<DeferredStepRow>(
    `SELECT migration, position, description, statement, repeat, index_name, cursor
       FROM ${DEFERRED_STEPS_TABLE} WHERE completed_at IS NULL ORDER BY migration, position`,
  );
  const done: string[] = [];
  const warnings: string[] = [];
  if (steps.length === 0) return { done, warnings };
  for (const step of steps) {
    log(`running deferred step: ${step.description}`);
    try {
      await withLockRetry(client, step.description, () => runDeferredStep(client, step, log), log);
    } catch (err) {
      const message = (err as { message?: string }).message ?? String(err);
      await recordStep(client, step, { error: message, sqlstate: errorCode(err) ?? null });
      if (errorCode(err) === '23514') {
        warnings.push(message);
        continue;
      }
      if (err instanceof OperationalError) throw err;
      throw new OperationalError(
        `Deferred step "${step.description}" (migration ${step.migration}) failed: ${message}. Every migration is ` +
          'applied; fix the cause and run `neotoma-ops migrate up` again to finish this step.',
        { cause: err },
      );
    }
    await recordStep(client, step, { done: true });
    done.push(step.description);
  }
  return { done, warnings };
}

/**
 * Wraps the client handed to node-pg-migrate so that a failing statement can be traced back to its
 * migration file and line.
 */
function tracingClient(client: pg.Client, settings: string): { client: pg.Client; lastQuery: () => string } {
  let last = '';
  const proxy = new Proxy(client, {
    get(target, prop, receiver) {
      if (prop === 'query') {
        return async (config: string | { text: string }, ...rest: unknown[]) => {
          last = typeof config === 'string' ? config : config.text;
          const result = await (target.query as (...a: unknown[]) => Promise<unknown>)(config, ...rest);
          // each migration's transaction gets the run's settings (SET LOCAL: nothing is left on a pooled session)
          if (/^\s*BEGIN\s*;?\s*$/i.test(last)) await target.query(settings);
          return result;
        };
      }
      const value = Reflect.get(target, prop, receiver) as unknown;
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { client: proxy, lastQuery: () => last };
}

async function locateMigrationError(
  err: unknown,
  failingSql: string,
  dir: string,
  migration: string | undefined,
): Promise<never> {
  const e = err as { message?: string; position?: string };
  const outOfOrder = e.message ? /^Not run migration (\S+) is preceding already run migration (\S+)/.exec(e.message) : null;
  if (outOfOrder) {
    throw new OperationalError(
      `Migration ${outOfOrder[1]} is not applied but sorts before ${outOfOrder[2]}, which is: migrations apply in ` +
        'name order only. Give the new migration a number after the last applied one (see `neotoma-ops migrate status`).',
      { cause: err },
    );
  }
  if (!migration || e.message === undefined) throw err;
  const file = path.join(dir, `${migration}.sql`);
  const text = await readFile(file, 'utf8').catch(() => '');
  // node-pg-migrate may append a ';' to the section it runs
  const at = text.indexOf(failingSql.trim().replace(/;$/, '').trim().slice(0, 200));
  let line: number | undefined;
  if (at >= 0) {
    const queryOffset = e.position ? Number(e.position) - 1 - (failingSql.length - failingSql.trimStart().length) : 0;
    line = lineAt(text, at + Math.max(0, queryOffset));
  }
  throw new MigrationFileError(relative(file), line, e.message, err);
}

async function runMigrations(
  client: pg.Client,
  direction: 'up' | 'down',
  dir: string,
  count: number | undefined,
  log: (line: string) => void,
): Promise<string[]> {
  const done: string[] = [];
  await withLockRetry(client, `migrate ${direction}`, async () => {
    const batch = await runMigrationsOnce(client, direction, dir, count === undefined ? undefined : count - done.length, log);
    done.push(...batch);
  }, log);
  return done;
}

async function runMigrationsOnce(
  client: pg.Client,
  direction: 'up' | 'down',
  dir: string,
  count: number | undefined,
  log: (line: string) => void,
): Promise<string[]> {
  const traced = tracingClient(client, transactionSettings(client));
  let current: string | undefined;
  const sink = (msg: string): void => {
    const m = /^### MIGRATION (.+) \((UP|DOWN)\) ###$/.exec(msg);
    if (m) {
      current = m[1];
      log(`${direction === 'up' ? 'applying' : 'reverting'} migration ${current}`);
    }
  };
  try {
    const done = await runner({
      dbClient: traced.client,
      dir,
      direction,
      count: direction === 'down' ? (count ?? 1) : count,
      migrationsTable: MIGRATIONS_TABLE,
      migrationsSchema: MIGRATIONS_SCHEMA,
      createMigrationsSchema: true,
      noLock: true, // our own lock covers migrations and SQL files together
      checkOrder: true,
      logger: { debug: () => undefined, info: sink, warn: sink, error: () => undefined },
    });
    return done.map((m) => m.name);
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    if (RETRYABLE.has(errorCode(err) ?? '')) throw err;
    return locateMigrationError(err, traced.lastQuery(), dir, current);
  }
}

/** Takes the migrate lease, or says it is taken; the lease table is created first when missing. */
async function tryLease(client: pg.Client, holder: string): Promise<boolean> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATE_LOCK_KEY]);
    await client.query(`
      CREATE SCHEMA IF NOT EXISTS neotoma_ops;
      CREATE TABLE IF NOT EXISTS neotoma_ops.migrate_lock (
        singleton   boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
        holder      text        NOT NULL,
        acquired_at timestamptz NOT NULL DEFAULT now(),
        expires_at  timestamptz NOT NULL
      );
      ALTER TABLE neotoma_ops.migrate_lock ENABLE ROW LEVEL SECURITY;`);
    const { rows } = await client.query<{ holder: string }>(
      `INSERT INTO neotoma_ops.migrate_lock AS l (holder, expires_at) VALUES ($1, now() + make_interval(secs => $2))
       ON CONFLICT (singleton) DO UPDATE SET holder = EXCLUDED.holder, acquired_at = now(), expires_at = EXCLUDED.expires_at
        WHERE l.expires_at < now() OR l.holder = EXCLUDED.holder
       RETURNING holder`,
      [holder, LEASE_SECONDS],
    );
    await client.query('COMMIT');
    return rows.length === 1;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

async function withMigrateLock<T>(databaseUrl: string, options: MigrateOptions, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const log = options.log ?? (() => undefined);
  const client = await connect(databaseUrl, { applicationName: 'neotoma-ops migrate' });
  // a migration's own RAISE NOTICE is for the operator; "does not exist, skipping" and the like are not
  client.on('notice', (n: { code?: string; message?: string }) => {
    if (n.code === '00000' && n.message && !/, skipping$/.test(n.message)) log(`notice: ${n.message}`);
  });
  const holder = `${os.hostname()}:${process.pid}:${randomUUID()}`;
  let renewer: pg.Client | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    await preflight(client);
    lockTimeouts.set(client, options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS);
    for (let waited = false; !(await tryLease(client, holder)); waited = true) {
      if (!waited) {
        log('waiting for another `neotoma-ops migrate` to finish (its lease is the row of neotoma_ops.migrate_lock; ' +
          `the lease of a run that was killed expires ${LEASE_SECONDS} s after its last renewal)`);
      }
      await sleep(500);
    }
    // renewed from a second connection: the first may be busy for minutes building an index
    renewer = await connect(databaseUrl, { applicationName: 'neotoma-ops migrate lease' });
    renewer.on('error', () => undefined);
    const r = renewer;
    timer = setInterval(() => {
      r.query(`UPDATE neotoma_ops.migrate_lock SET expires_at = now() + make_interval(secs => $2) WHERE holder = $1`,
        [holder, LEASE_SECONDS]).catch(() => undefined);
    }, LEASE_RENEW_MS);
    try {
      await ensureBookkeeping(client);
      return await fn(client);
    } finally {
      clearInterval(timer);
      await client.query('DELETE FROM neotoma_ops.migrate_lock WHERE holder = $1', [holder]).catch(() => undefined);
    }
  } finally {
    await renewer?.end().catch(() => undefined);
    await client.end().catch(() => undefined);
  }
}

/**
 * Applies pending migrations, then every changed function and trigger file, then the deferred steps the
 * migrations declared. Running it twice changes nothing.
 */
export async function migrateUp(databaseUrl: string, options: MigrateOptions = {}): Promise<MigrateResult> {
  const log = options.log ?? (() => undefined);
  const dirs = folders(options);
  return withMigrateLock(databaseUrl, options, async (client) => {
    const migrations = await runMigrations(client, 'up', dirs.migrations, options.count, log);
    const sqlFiles = await applyRepeatableFiles(client, dirs.repeatable, dirs.migrations, log);
    const deferred = await runDeferredSteps(client, log);
    return { migrations, sqlFiles, deferredSteps: deferred.done, warnings: deferred.warnings };
  });
}

/**
 * Reverts the last `count` migrations (default 1). What the SQL files of those migrations created is dropped first
 * (by the signatures recorded when they were applied); the files of earlier migrations stay applied. Reverting
 * the last migration removes the runner's own tables too.
 */
export async function migrateDown(databaseUrl: string, options: MigrateOptions = {}): Promise<MigrateResult> {
  const log = options.log ?? (() => undefined);
  const dirs = folders(options);
  let emptied = false;
  const result = await withMigrateLock(databaseUrl, options, async (client) => {
    const applied = await appliedMigrations(client);
    const reverting = applied.slice(-Math.max(0, options.count ?? 1));
    await dropObjectsOfMigrations(client, reverting, log);
    const migrations = await runMigrations(client, 'down', dirs.migrations, options.count, log);
    if ((await appliedMigrations(client)).length === 0 && applied.length > 0) {
      await dropBookkeeping(client, log);
      emptied = true;
    }
    return { migrations, sqlFiles: [], deferredSteps: [], warnings: [] };
  });
  if (emptied) await dropLeaseTable(databaseUrl);
  return result;
}

/** The lease table and the schema, once nothing else is in it (another run may have created it again: then kept). */
async function dropLeaseTable(databaseUrl: string): Promise<void> {
  const client = await connect(databaseUrl, { applicationName: 'neotoma-ops migrate' });
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATE_LOCK_KEY]);
    const { rows } = await client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'neotoma_ops' AND c.relname <> 'migrate_lock' AND c.relname NOT LIKE 'migrate_lock%'`,
    );
    const lease = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM neotoma_ops.migrate_lock WHERE expires_at > now()`)
      .catch(() => ({ rows: [{ n: 0 }] }));
    if ((rows[0]?.n ?? 1) === 0 && (lease.rows[0]?.n ?? 1) === 0) {
      await client.query('DROP TABLE IF EXISTS neotoma_ops.migrate_lock');
      await client.query(`DO $$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_namespace n ON d.refobjid = n.oid
                        WHERE n.nspname = 'neotoma_ops' AND d.refclassid = 'pg_catalog.pg_namespace'::regclass) THEN
          DROP SCHEMA IF EXISTS neotoma_ops;
        END IF;
      END $$`);
    }
    await client.query('COMMIT');
  } catch {
    await client.query('ROLLBACK').catch(() => undefined);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Which migrations and SQL files are applied, changed or pending; changes nothing. */
export async function migrationStatus(databaseUrl: string, options: MigrateOptions = {}): Promise<MigrationStatus> {
  const client = await connect(databaseUrl, { applicationName: 'neotoma-ops migrate status' });
  try {
    return await readMigrationStatus(client, options);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** migrationStatus on a connection the caller holds (read-only queries). */
export async function readMigrationStatus(client: pg.ClientBase, options: MigrateOptions = {}): Promise<MigrationStatus> {
  const dirs = folders(options);
  {
    const all = (await readdir(dirs.migrations)).filter((n) => n.endsWith('.sql')).sort().map((n) => n.replace(/\.sql$/, ''));
    const table = `${MIGRATIONS_SCHEMA}.${MIGRATIONS_TABLE}`;
    const exists = await client.query<{ ok: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS ok`, [table]);
    const applied = exists.rows[0]?.ok
      ? (await client.query<{ name: string }>(`SELECT name FROM ${table} ORDER BY run_on, id`)).rows.map((r) => r.name)
      : [];
    const known = await appliedChecksums(client);
    const sqlFiles: SqlFileState[] = [];
    for (const file of await listRepeatableFiles(dirs.repeatable)) {
      const name = relative(file);
      const stored = known.get(name);
      sqlFiles.push({ file: name, state: stored === undefined ? 'pending' : stored === (await checksum(file)) ? 'applied' : 'changed' });
    }
    const stepsTable = await client.query<{ ok: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS ok`, [DEFERRED_STEPS_TABLE]);
    const pendingSteps = stepsTable.rows[0]?.ok
      ? (
          await client.query<{ migration: string; description: string; last_error: string | null; last_sqlstate: string | null }>(
            `SELECT migration, description, last_error, last_sqlstate FROM ${DEFERRED_STEPS_TABLE}
              WHERE completed_at IS NULL ORDER BY migration, position`,
          )
        ).rows.map((r) => ({ migration: r.migration, description: r.description, lastError: r.last_error, lastSqlstate: r.last_sqlstate }))
      : [];
    return { applied, pending: all.filter((n) => !applied.includes(n)), sqlFiles, pendingSteps };
  }
}
