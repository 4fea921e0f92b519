// `migrate up`, `down` and `status`. The runner is small and its own: each migration runs in one transaction that
// also records what it created (neotoma_ops.owned_objects) and, for down, drops what its SQL files created; a
// library runner (node-pg-migrate's) opens and commits each migration's transaction itself, with no place inside it
// for either, nor for the lock_timeout every transaction here starts with.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type pg from 'pg';
import { connect } from '../db/connect.js';
import { OperationalError } from '../errors.js';
import { migrationsDir, projectRoot, sqlFunctionsDir, sqlTriggersDir, sqlViewsDir } from '../paths.js';
import { runDeferredSteps, type DeferredStep } from './deferred.js';
import { dropLeaseTable, withMigrateLease } from './lease.js';
import { DEFAULT_LOCK_TIMEOUT_MS, inTransaction, isLockFailure, withLockRetry } from './locks.js';
import { lineAt, namedObjects, readMigrations, readSqlFiles, relative, type Migration, type SqlFile } from './source.js';

export interface MigrateOptions {
  /** Down: how many migrations to revert (default 1). Up: all pending. */
  count?: number;
  log?: (line: string) => void;
  /** Defaults to the package's migrations/ folder. */
  migrationsDir?: string;
  /** Folders of SQL files applied after the migrations; defaults to sql/functions, sql/views, sql/triggers. */
  repeatableDirs?: string[];
  /** lock_timeout of migrations and SQL files, in ms (default 500): the longest a writer waits behind them. */
  lockTimeoutMs?: number;
  /** Down: revert even when that destroys rows the project did not write (application rows, queued bytes). */
  dropData?: boolean;
  /** Down: say what would be dropped and restored, change nothing. */
  dryRun?: boolean;
}

export interface MigrateResult {
  migrations: string[];
  sqlFiles: string[];
  /** Deferred steps completed by this run (index builds, validations, backfills), by description. */
  deferredSteps: string[];
  /** What `up` put back because it had drifted from the record (one line each). */
  repaired: string[];
  /** Paragraphs the operator must act on; the run itself is complete (e.g. rows that break a new check). */
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
  /** How far a running step has come, and when that was written. */
  progress: string | null;
  progressAt: Date | null;
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

const REPEATABLE_DIRS = [sqlFunctionsDir, sqlViewsDir, sqlTriggersDir];
const RUNNER_DIR = path.join(projectRoot, 'sql', 'runner');

interface Context {
  client: pg.Client;
  side: pg.Client;
  log: (line: string) => void;
  lockTimeoutMs: number;
  migrations: Migration[];
  dirs: string[];
}

function located(err: unknown, file: string, text: string, at: number): never {
  if (isLockFailure(err) || err instanceof OperationalError) throw err;
  const e = err as { message?: string; position?: string };
  if (e.message === undefined) throw err;
  throw new MigrationFileError(relative(file), e.position ? lineAt(text, at + Number(e.position) - 1) : undefined, e.message, err);
}

async function exists(client: pg.ClientBase, relation: string): Promise<boolean> {
  return (await client.query<{ ok: boolean }>('SELECT to_regclass($1) IS NOT NULL AS ok', [relation])).rows[0]!.ok;
}

async function appliedMigrations(client: pg.ClientBase): Promise<string[]> {
  if (!(await exists(client, 'neotoma_ops.pgmigrations'))) return [];
  return (await client.query<{ name: string }>('SELECT name FROM neotoma_ops.pgmigrations ORDER BY run_on, id')).rows.map((r) => r.name);
}

async function appliedChecksums(client: pg.ClientBase): Promise<Map<string, string>> {
  if (!(await exists(client, 'neotoma_ops.applied_sql_files'))) return new Map();
  const { rows } = await client.query<{ file: string; checksum: string }>('SELECT file, checksum FROM neotoma_ops.applied_sql_files');
  return new Map(rows.map((r) => [r.file, r.checksum]));
}

/** The runner's own tables and functions (sql/runner/), created or brought up to date at the start of a run. */
async function ensureRunner(client: pg.Client): Promise<void> {
  if ((await appliedMigrations(client)).length > 0 && !(await exists(client, 'neotoma_ops.owned_objects'))) {
    throw new OperationalError(
      'This database was migrated by a development version of neotoma-ops that kept no record of what it created, ' +
        'so this version cannot tell its objects from yours. Revert it with that version (`migrate down --count 100`), ' +
        'or start from a fresh database (for the embedded one: delete .neotoma/db).',
    );
  }
  const names = (await readdir(RUNNER_DIR)).filter((n) => n.endsWith('.sql')).sort((a, b) => (a === 'bookkeeping.sql' ? -1 : b === 'bookkeeping.sql' ? 1 : a.localeCompare(b)));
  await inTransaction(client, DEFAULT_LOCK_TIMEOUT_MS, async () => {
    await client.query('SET LOCAL check_function_bodies = off');
    for (const n of names) await client.query(await readFile(path.join(RUNNER_DIR, n), 'utf8'));
  });
}

/** After the last migration is reverted: the runner's tables and functions go too (the lease table last). */
async function dropRunner(client: pg.Client, log: (line: string) => void): Promise<void> {
  const functions = (await readdir(RUNNER_DIR)).filter((n) => n.endsWith('.sql') && n !== 'bookkeeping.sql').map((n) => n.replace(/\.sql$/, ''));
  await inTransaction(client, DEFAULT_LOCK_TIMEOUT_MS, async () => {
    // names are the runner's own file names (snake_case identifiers), never input
    for (const f of functions) await client.query(`DROP FUNCTION IF EXISTS neotoma_ops.${f}`);
    await client.query(`DROP TABLE IF EXISTS neotoma_ops.owned_objects, neotoma_ops.catalog_before, neotoma_ops.catalog_after, neotoma_ops.applied_sql_files,
                                             neotoma_ops.deferred_steps, neotoma_ops.pgmigrations`);
  });
  log('every migration is reverted: removed the migration history (neotoma_ops)');
}

/** Runs `text` as one step of the record: what it creates or changes is recorded as `source`'s. */
async function recordedStep(client: pg.Client, source: string, run: () => Promise<void>): Promise<void> {
  await client.query('SELECT neotoma_ops.snapshot_catalog()');
  await run();
  await client.query('SELECT neotoma_ops.record_owned_objects($1)', [source]);
}

function checkOrder(migrations: Migration[], applied: string[]): void {
  const names = migrations.map((m) => m.name);
  const last = applied.at(-1);
  const early = last === undefined ? undefined : names.find((n) => n < last && !applied.includes(n));
  if (early) {
    const after = [...applied].sort().find((a) => a > early);
    throw new OperationalError(
      `Migration ${early} is not applied but sorts before ${after}, which is: migrations apply in ` +
        'name order only. Give the new migration a number after the last applied one (see `neotoma-ops migrate status`).',
    );
  }
}

async function applyMigrations(ctx: Context, count: number | undefined): Promise<string[]> {
  const { client, log } = ctx;
  const applied = await appliedMigrations(client);
  checkOrder(ctx.migrations, applied);
  const pending = ctx.migrations.filter((m) => !applied.includes(m.name)).slice(0, count);
  for (const m of pending) {
    log(`applying migration ${m.name}`);
    await withLockRetry(client, `migration ${m.name}`, () =>
      inTransaction(client, ctx.lockTimeoutMs, async () => {
        await recordedStep(client, m.name, async () => {
          if (m.up.trim()) await client.query(m.up).catch((err: unknown) => located(err, m.file, m.text, m.upAt));
        });
        await client.query('INSERT INTO neotoma_ops.pgmigrations (name, run_on) VALUES ($1, now())', [m.name]);
      }), log);
  }
  return pending.map((m) => m.name);
}

/**
 * Objects the SQL files not applied yet are named after that exist and are not the project's: applying the file
 * would replace them. Checked before anything changes.
 */
async function collisions(client: pg.ClientBase, files: SqlFile[], known: Map<string, string>): Promise<string[]> {
  const named = files.filter((f) => !known.has(f.name)).flatMap((f) => namedObjects(f.name).map((o) => ({ ...o, file: f.name })));
  if (named.length === 0) return [];
  const recorded = await exists(client, 'neotoma_ops.owned_objects');
  const { rows } = await client.query<{ file: string; object: string }>(
    `WITH named AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS n (kind, schema, name, file))
     SELECT n.file, o.object
       FROM named AS n
       JOIN (SELECT 'function' AS kind, ns.nspname AS schema, p.proname AS name,
                    format('%I.%I(%s)', ns.nspname, p.proname, pg_catalog.oidvectortypes(p.proargtypes)) AS object
               FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace ns ON ns.oid = p.pronamespace
             UNION ALL
             SELECT 'view', ns.nspname, c.relname, format('%I.%I', ns.nspname, c.relname)
               FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace WHERE c.relkind IN ('v', 'm')
             UNION ALL
             SELECT 'trigger', NULL, t.tgname, format('%I ON %I.%I', t.tgname, ns.nspname, c.relname)
               FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
               JOIN pg_catalog.pg_namespace ns ON ns.oid = c.relnamespace
              WHERE NOT t.tgisinternal AND ns.nspname IN ('public', 'neotoma_ops')) AS o
         ON o.kind = n.kind AND o.name = n.name AND (n.schema IS NULL OR o.schema = n.schema)
      ${recorded ? 'WHERE NOT EXISTS (SELECT 1 FROM neotoma_ops.owned_objects AS r WHERE r.kind = o.kind AND r.identity = o.object)' : ''}
      ORDER BY 1, 2`,
    [named.map((n) => n.kind), named.map((n) => n.schema), named.map((n) => n.name), named.map((n) => n.file)],
  );
  return rows.map((r) => `${r.object} exists and is not neotoma-ops's: ${r.file} would replace it`);
}

/**
 * Applies every SQL file whose required migration is applied and whose content changed (or that `force` names).
 * Each folder is applied in ONE transaction: a writer sees either none of the triggers of sql/triggers or all of
 * them, and the functions they call are committed before them. What a file defines is recorded as the file's.
 */
async function applySqlFiles(ctx: Context, files: SqlFile[], force: Set<string> = new Set()): Promise<string[]> {
  const { client, log } = ctx;
  const known = await appliedChecksums(client);
  const applied = new Set(await appliedMigrations(client));
  const done: string[] = [];
  for (const dir of ctx.dirs) {
    const prefix = `${relative(dir)}${path.sep}`;
    const present = files.filter((f) => f.name.startsWith(prefix) && applied.has(f.requires));
    const changed = present.filter((f) => known.get(f.name) !== f.checksum || force.has(f.name));
    const removed = [...known.keys()].filter((k) => k.startsWith(prefix) && !present.some((f) => f.name === k));
    if (changed.length === 0 && removed.length === 0) continue;
    await withLockRetry(client, relative(dir), async () => {
      await client.query('BEGIN');
      let current: SqlFile | undefined;
      try {
        // as pg_dump does: files may then reference functions of files that sort after them
        await client.query(`SET LOCAL check_function_bodies = off; SET LOCAL lock_timeout = ${ctx.lockTimeoutMs}; SET LOCAL statement_timeout = 0`);
        if (removed.length > 0) {
          await client.query('SELECT neotoma_ops.drop_owned_objects($1)', [removed]);
          await client.query('DELETE FROM neotoma_ops.owned_objects WHERE source = ANY ($1::text[])', [removed]);
          await client.query('DELETE FROM neotoma_ops.applied_sql_files WHERE file = ANY ($1::text[])', [removed]);
        }
        for (const f of changed) {
          current = f;
          await recordedStep(client, f.name, () => client.query(f.text).then(() => undefined));
          await client.query(
            `INSERT INTO neotoma_ops.applied_sql_files (file, checksum, migration) VALUES ($1, $2, $3)
             ON CONFLICT (file) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now(), migration = EXCLUDED.migration`,
            [f.name, f.checksum, f.requires],
          );
        }
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        if (current) located(err, path.join(projectRoot, current.name), current.text, 0);
        throw err;
      }
    }, log);
    for (const f of removed) log(`removed what ${f} defined (the file is gone)`);
    for (const f of changed) log(`applied ${f.name}`);
    done.push(...changed.map((f) => f.name));
  }
  return done;
}

async function deferredSteps(ctx: Context): Promise<{ done: string[]; warnings: string[] }> {
  const { client } = ctx;
  // a step runs in transactions of its own: the catalog before it is kept in a table, and what it built recorded
  const record = async (step: DeferredStep, run: () => Promise<void>): Promise<void> => {
    await client.query('SELECT neotoma_ops.snapshot_catalog()');
    await run();
    await inTransaction(client, ctx.lockTimeoutMs, () =>
      client.query('SELECT neotoma_ops.record_owned_objects($1, false)', [step.migration]).then(() => undefined));
  };
  return runDeferredSteps(client, ctx.side, ctx.log, record);
}

/** What `up` puts back (the other kinds of doctor's rows are for a person: counters, failing jobs, limits). */
const DRIFT_KINDS = ['missing', 'altered', 'disabled', 'invalid', 'not validated', 'row security', 'paused', 'grants'];

interface DriftRow {
  kind: string;
  object: string;
  problem: string;
  fix: string;
  repair: string[] | null;
  source: string | null;
}

/**
 * Puts back what drifted from the record (neotoma_ops.doctor()): files re-applied, statements of the record run
 * (index builds outside a transaction). Grants beyond the rules are revoked. What cannot be put back is a warning.
 */
async function converge(ctx: Context, files: SqlFile[]): Promise<{ repaired: string[]; warnings: string[] }> {
  const { client, log } = ctx;
  if (!(await client.query<{ ok: boolean }>(`SELECT to_regprocedure('neotoma_ops.doctor(boolean)') IS NOT NULL AS ok`)).rows[0]!.ok) {
    return { repaired: [], warnings: [] };
  }
  const drift = async (): Promise<DriftRow[]> =>
    (await client.query<DriftRow>(`SELECT kind, object, problem, fix, repair, source FROM neotoma_ops.doctor(false)
                                    WHERE kind = ANY ($1::text[])`, [DRIFT_KINDS])).rows;
  const rows = await drift();
  if (rows.length === 0) return { repaired: [], warnings: [] };
  const repaired: string[] = [];
  const failed: string[] = [];
  const reapply = new Set(rows.filter((r) => r.source).map((r) => r.source!));
  if (reapply.size > 0) {
    await applySqlFiles(ctx, files, reapply);
    for (const r of rows.filter((x) => x.source)) repaired.push(`${r.problem}: ${r.source} applied again`);
  }
  for (const r of rows.filter((x) => x.repair && !x.source)) {
    const outside = r.repair!.some((s) => /\bCONCURRENTLY\b/.test(s));
    try {
      await withLockRetry(client, `repair of ${r.object}`, async () => {
        if (outside) {
          for (const s of r.repair!) await client.query(s); // each statement outside any transaction block
        } else {
          await inTransaction(client, ctx.lockTimeoutMs, async () => {
            for (const s of r.repair!) await client.query(s);
          });
        }
      }, log);
      repaired.push(`${r.problem}: put back`);
    } catch (err) {
      failed.push(`${r.problem}; putting it back failed (${(err as Error).message}): ${r.fix}`);
    }
  }
  for (const line of repaired) log(`repaired: ${line}`);
  const left = (await drift()).filter((r) => !failed.some((f) => f.startsWith(r.problem)));
  return { repaired, warnings: [...failed, ...left.map((r) => `${r.problem}; it cannot be put back: ${r.fix}`)] };
}

function folders(options: MigrateOptions): { migrations: string; repeatable: string[] } {
  return { migrations: options.migrationsDir ?? migrationsDir, repeatable: options.repeatableDirs ?? REPEATABLE_DIRS };
}

async function context(client: pg.Client, side: pg.Client, options: MigrateOptions): Promise<{ ctx: Context; files: SqlFile[] }> {
  const dirs = folders(options);
  const migrations = await readMigrations(dirs.migrations);
  const files = await readSqlFiles(dirs.repeatable, migrations.map((m) => m.name));
  return {
    ctx: { client, side, log: options.log ?? (() => undefined), lockTimeoutMs: options.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS, migrations, dirs: dirs.repeatable },
    files,
  };
}

/**
 * Applies pending migrations, then every new or changed SQL file, then the deferred steps the migrations declared,
 * then puts back whatever of the project's objects drifted from the record. Refuses, before anything changes, to
 * replace an object the project did not create. Running it twice changes nothing.
 */
export async function migrateUp(databaseUrl: string, options: MigrateOptions = {}): Promise<MigrateResult> {
  return withMigrateLease(databaseUrl, options.log ?? (() => undefined), async (client, side) => {
    const { ctx, files } = await context(client, side, options);
    const clash = await collisions(client, files, await appliedChecksums(client));
    if (clash.length > 0) {
      throw new OperationalError(
        `Nothing was changed: ${clash.join('; ')}. neotoma-ops never replaces what it did not create. Rename or drop ` +
          'yours (e.g. ALTER FUNCTION … RENAME TO …), or install neotoma-ops in another database; `neotoma-ops doctor` lists these too.',
      );
    }
    await ensureRunner(client);
    const migrations = await applyMigrations(ctx, options.count);
    const sqlFiles = await applySqlFiles(ctx, files);
    const deferred = await deferredSteps(ctx);
    const fixed = await converge(ctx, files);
    return { migrations, sqlFiles, deferredSteps: deferred.done, repaired: fixed.repaired, warnings: [...deferred.warnings, ...fixed.warnings] };
  });
}

/**
 * Reverts the last `count` migrations (default 1), each in one transaction: what the SQL files requiring it created
 * is dropped (by the record), its down section runs, and the record forgets what it created and changed. Refuses
 * when that would destroy rows the project did not write itself (neotoma_ops.rows_at_risk()), naming what and how
 * many, unless `dropData`; with `dryRun` it only says what it would do. Reverting the last migration removes the
 * runner's own tables too.
 */
export async function migrateDown(databaseUrl: string, options: MigrateOptions = {}): Promise<MigrateResult> {
  let emptied = false;
  const result = await withMigrateLease(databaseUrl, options.log ?? (() => undefined), async (client, side) => {
    const { ctx } = await context(client, side, options);
    const { log } = ctx;
    const applied = await appliedMigrations(client);
    if (applied.length === 0) return { migrations: [], sqlFiles: [], deferredSteps: [], repaired: [], warnings: [] };
    await ensureRunner(client);
    const reverting = applied.slice(-Math.max(0, options.count ?? 1)).reverse();
    const risk = (await client.query<{ migration: string; what: string; how_many: string }>(
      'SELECT migration, what, how_many::text FROM neotoma_ops.rows_at_risk($1)', [reverting])).rows;
    const riskText = risk.map((r) => `${r.migration}: ${Number(r.how_many).toLocaleString('en-US')} ${r.what}`);
    if (options.dryRun) {
      const { rows: plan } = await client.query<{ migration: string; drops: string[] | null; restores: string[] | null }>(
        `SELECT m.name AS migration,
                (SELECT array_agg(o.kind || ' ' || o.identity ORDER BY o.kind, o.identity) FROM neotoma_ops.owned_objects o
                  WHERE NOT o.preexisting AND o.definition IS NOT NULL
                    AND (o.source = m.name OR o.source IN (SELECT f.file FROM neotoma_ops.applied_sql_files f WHERE f.migration = m.name))) AS drops,
                (SELECT array_agg(o.kind || ' ' || o.identity ORDER BY o.kind, o.identity) FROM neotoma_ops.owned_objects o
                  WHERE (o.preexisting AND o.source = m.name) OR o.changed_by = m.name) AS restores
           FROM unnest($1::text[]) WITH ORDINALITY AS m (name, n) ORDER BY m.n`,
        [reverting],
      );
      for (const p of plan) {
        log(`would revert ${p.migration}: drop ${p.drops?.length ?? 0} object(s)${p.drops ? ` (${p.drops.join(', ')})` : ''}; ` +
          `put back ${p.restores?.length ?? 0}${p.restores ? ` (${p.restores.join(', ')})` : ''}`);
      }
      for (const r of riskText) log(`would destroy ${r}`);
      return { migrations: [], sqlFiles: [], deferredSteps: [], repaired: [], warnings: riskText };
    }
    if (risk.length > 0 && !options.dropData) {
      throw new OperationalError(
        `Nothing was reverted: it would destroy data neotoma-ops did not write: ${riskText.join('; ')}. Move or drain ` +
          'it first (queued uploads: let the worker store them, see `neotoma-ops status`), or run `migrate down` again ' +
          'with --drop-data to destroy it; `--dry-run` lists everything it would drop.',
      );
    }
    const byName = new Map(ctx.migrations.map((m) => [m.name, m]));
    const done: string[] = [];
    for (const name of reverting) {
      const m = byName.get(name);
      if (!m) throw new OperationalError(`Migration ${name} is applied but its file is gone from ${relative(folders(options).migrations)}: put it back to revert it.`);
      log(`reverting migration ${name}`);
      await withLockRetry(client, `migration ${name}`, () =>
        inTransaction(client, ctx.lockTimeoutMs, async () => {
          const files = (await client.query<{ file: string }>('SELECT file FROM neotoma_ops.applied_sql_files WHERE migration = $1', [name])).rows.map((r) => r.file);
          const dropped = (await client.query<{ o: string }>('SELECT neotoma_ops.drop_owned_objects($1) AS o', [files])).rows;
          if (m.down.trim()) await client.query(m.down).catch((err: unknown) => located(err, m.file, m.text, m.downAt));
          await client.query('SELECT neotoma_ops.forget_owned_objects($1, $2)', [name, files]);
          await client.query('DELETE FROM neotoma_ops.applied_sql_files WHERE migration = $1', [name]);
          await client.query('DELETE FROM neotoma_ops.pgmigrations WHERE name = $1', [name]);
          if (dropped.length > 0) log(`dropped the ${dropped.length} object(s) its SQL files created`);
        }), log);
      done.push(name);
    }
    if ((await appliedMigrations(client)).length === 0) {
      await dropRunner(client, log);
      emptied = true;
    }
    return { migrations: done, sqlFiles: [], deferredSteps: [], repaired: [], warnings: [] };
  });
  if (emptied) await dropLeaseTable(databaseUrl);
  return result;
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
  const all = (await readMigrations(dirs.migrations)).map((m) => m.name);
  const applied = await appliedMigrations(client);
  const known = await appliedChecksums(client);
  const files = await readSqlFiles(dirs.repeatable, all);
  const sqlFiles: SqlFileState[] = files.map((f) => {
    const stored = known.get(f.name);
    return { file: f.name, state: stored === undefined ? 'pending' : stored === f.checksum ? 'applied' : 'changed' };
  });
  const pendingSteps = (await exists(client, 'neotoma_ops.deferred_steps'))
    ? (
        await client.query<{ migration: string; description: string; last_error: string | null; last_sqlstate: string | null; progress: string | null; progress_at: Date | null }>(
          `SELECT migration, description, last_error, last_sqlstate, progress, progress_at FROM neotoma_ops.deferred_steps
            WHERE completed_at IS NULL ORDER BY migration, position`,
        )
      ).rows.map((r) => ({
        migration: r.migration, description: r.description, lastError: r.last_error, lastSqlstate: r.last_sqlstate,
        progress: r.progress, progressAt: r.progress_at,
      }))
    : [];
  return { applied, pending: all.filter((n) => !applied.includes(n)), sqlFiles, pendingSteps };
}

/** The SQL files of the package with what each requires (for doctor's collision check before an upgrade). */
export async function plannedSqlFiles(options: MigrateOptions = {}): Promise<SqlFile[]> {
  const dirs = folders(options);
  return readSqlFiles(dirs.repeatable, (await readMigrations(dirs.migrations)).map((m) => m.name));
}

export { collisions as sqlFileCollisions };
