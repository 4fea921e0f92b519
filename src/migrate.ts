import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type pg from 'pg';
import { runner } from 'node-pg-migrate';
import { connect } from './db/connect.js';
import { preflight } from './db/preflight.js';
import { OperationalError } from './errors.js';
import { migrationsDir, projectRoot, sqlFunctionsDir, sqlTriggersDir } from './paths.js';

/** Held for the whole of `migrate`, so concurrent runs queue behind each other instead of failing. */
const MIGRATE_LOCK_KEY = 4_747_120_003; // fits bigint; arbitrary but fixed
const MIGRATIONS_SCHEMA = 'neotoma_ops';
const MIGRATIONS_TABLE = 'pgmigrations';
const SQL_FILES_TABLE = 'neotoma_ops.applied_sql_files';

export interface MigrateOptions {
  /** Down: how many migrations to revert (default 1). Up: all pending. */
  count?: number;
  log?: (line: string) => void;
  /** Defaults to the package's migrations/ folder. */
  migrationsDir?: string;
  /** Folders of idempotent SQL files applied after the migrations; defaults to sql/functions then sql/triggers. */
  repeatableDirs?: string[];
}

function folders(options: MigrateOptions): { migrations: string; repeatable: string[] } {
  return {
    migrations: options.migrationsDir ?? migrationsDir,
    repeatable: options.repeatableDirs ?? [sqlFunctionsDir, sqlTriggersDir],
  };
}

export interface MigrateResult {
  migrations: string[];
  sqlFiles: string[];
}

export interface SqlFileState {
  file: string;
  state: 'applied' | 'changed' | 'pending';
}

export interface MigrationStatus {
  applied: string[];
  pending: string[];
  sqlFiles: SqlFileState[];
}

/** A migration or SQL file that failed, located by file and line. */
export class MigrationFileError extends OperationalError {
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    readonly pgMessage: string,
    cause: unknown,
  ) {
    super(`${file}${line ? `:${line}` : ''}: ${pgMessage}. Nothing from this file was applied; fix it and run migrate again.`, {
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

async function listSqlFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => n.endsWith('.sql'))
    .sort()
    .map((n) => path.join(dir, n));
}

/** Each folder in turn (functions, then triggers), files in name order. */
export async function listRepeatableFiles(dirs: string[] = [sqlFunctionsDir, sqlTriggersDir]): Promise<string[]> {
  const files: string[] = [];
  for (const dir of dirs) files.push(...(await listSqlFiles(dir)));
  return files;
}

async function checksum(file: string): Promise<string> {
  return createHash('sha256').update(await readFile(file)).digest('hex');
}

async function ensureBookkeeping(client: pg.Client): Promise<void> {
  await client.query(`
    CREATE SCHEMA IF NOT EXISTS neotoma_ops;
    CREATE TABLE IF NOT EXISTS ${SQL_FILES_TABLE} (
      file       text PRIMARY KEY,
      checksum   text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    );
    ALTER TABLE ${SQL_FILES_TABLE} ENABLE ROW LEVEL SECURITY;`);
}

async function appliedChecksums(client: pg.Client): Promise<Map<string, string>> {
  const exists = await client.query<{ ok: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS ok`, [SQL_FILES_TABLE]);
  if (!exists.rows[0]?.ok) return new Map();
  const { rows } = await client.query<{ file: string; checksum: string }>(`SELECT file, checksum FROM ${SQL_FILES_TABLE}`);
  return new Map(rows.map((r) => [r.file, r.checksum]));
}

/** Applies each function/trigger file whose content changed since it was last applied, one transaction per file. */
async function applyRepeatableFiles(client: pg.Client, dirs: string[], log: (line: string) => void): Promise<string[]> {
  await ensureBookkeeping(client);
  const known = await appliedChecksums(client);
  const applied: string[] = [];
  for (const file of await listRepeatableFiles(dirs)) {
    const name = relative(file);
    const sum = await checksum(file);
    if (known.get(name) === sum) continue;
    const text = await readFile(file, 'utf8');
    await client.query('BEGIN');
    try {
      // as pg_dump does: files may then reference functions of files that sort after them
      await client.query('SET LOCAL check_function_bodies = off');
      await client.query(text);
      await client.query(
        `INSERT INTO ${SQL_FILES_TABLE} (file, checksum) VALUES ($1, $2)
         ON CONFLICT (file) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now()`,
        [name, sum],
      );
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      const e = err as { message?: string; position?: string };
      throw new MigrationFileError(name, e.position ? lineAt(text, Number(e.position) - 1) : undefined, e.message ?? String(err), err);
    }
    log(`applied ${name}`);
    applied.push(name);
  }
  return applied;
}

/**
 * Wraps the client handed to node-pg-migrate so that a failing statement can be traced back to its
 * migration file and line.
 */
function tracingClient(client: pg.Client): { client: pg.Client; lastQuery: () => string } {
  let last = '';
  const proxy = new Proxy(client, {
    get(target, prop, receiver) {
      if (prop === 'query') {
        return (config: string | { text: string }, ...rest: unknown[]) => {
          last = typeof config === 'string' ? config : config.text;
          return (target.query as (...a: unknown[]) => unknown)(config, ...rest);
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
  const traced = tracingClient(client);
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
    return locateMigrationError(err, traced.lastQuery(), dir, current);
  }
}

async function withMigrateLock<T>(databaseUrl: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = await connect(databaseUrl, { applicationName: 'neotoma-ops migrate' });
  try {
    await preflight(client);
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATE_LOCK_KEY]);
    try {
      return await fn(client);
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATE_LOCK_KEY]).catch(() => undefined);
    }
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Applies pending migrations, then every changed function and trigger file. Running it twice changes nothing. */
export async function migrateUp(databaseUrl: string, options: MigrateOptions = {}): Promise<MigrateResult> {
  const log = options.log ?? (() => undefined);
  const dirs = folders(options);
  return withMigrateLock(databaseUrl, async (client) => {
    const migrations = await runMigrations(client, 'up', dirs.migrations, options.count, log);
    const sqlFiles = await applyRepeatableFiles(client, dirs.repeatable, log);
    return { migrations, sqlFiles };
  });
}

/**
 * Reverts the last `count` migrations (default 1). Function and trigger files are then marked
 * unapplied, so the next `up` re-creates whatever the reverted migrations dropped with their tables.
 */
export async function migrateDown(databaseUrl: string, options: MigrateOptions = {}): Promise<MigrateResult> {
  const log = options.log ?? (() => undefined);
  const dirs = folders(options);
  return withMigrateLock(databaseUrl, async (client) => {
    const migrations = await runMigrations(client, 'down', dirs.migrations, options.count, log);
    if ((await appliedChecksums(client)).size > 0) await client.query(`DELETE FROM ${SQL_FILES_TABLE}`);
    return { migrations, sqlFiles: [] };
  });
}

/** Which migrations and SQL files are applied, changed or pending; changes nothing. */
export async function migrationStatus(databaseUrl: string, options: MigrateOptions = {}): Promise<MigrationStatus> {
  const dirs = folders(options);
  const client = await connect(databaseUrl, { applicationName: 'neotoma-ops migrate status' });
  try {
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
    return { applied, pending: all.filter((n) => !applied.includes(n)), sqlFiles };
  } finally {
    await client.end().catch(() => undefined);
  }
}
