import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { connect } from './db/connect.js';
import { ensurePostgresPackages, LocalCluster } from './db/cluster.js';
import { createLog, type Log } from './log.js';
import { migrateUp } from './migrate.js';
import { neotomaHome } from './paths.js';
import { onStopSignals } from './signals.js';
import { runWorker } from './worker/command.js';

export interface Database {
  url: string;
  /** The embedded cluster, when DATABASE_URL is unset. */
  cluster?: LocalCluster;
  /** True when this process started the embedded cluster (and so should stop it when done). */
  startedHere: boolean;
}

/** Where clusters live when the postgres OS user cannot enter NEOTOMA_HOME (root in a private home folder). */
export const SHARED_CLUSTERS_DIR = '/var/lib/neotoma-ops';

function postgresCanWrite(dir: string): boolean {
  try {
    execFileSync('runuser', ['-u', 'postgres', '--', 'test', '-w', dir, '-a', '-x', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * The embedded cluster's folder: NEOTOMA_HOME/db. initdb and pg_ctl run as the postgres OS user when neotoma-ops
 * runs as root, so when that user cannot reach NEOTOMA_HOME (a project cloned into root's 0700 home), the
 * cluster lives under /var/lib/neotoma-ops/<hash of NEOTOMA_HOME>/db instead, and the log says so.
 */
export function embeddedClusterDir(log: (line: string) => void = () => undefined): string {
  const home = neotomaHome();
  const preferred = path.join(home, 'db');
  if (process.getuid?.() !== 0 || existsSync(path.join(preferred, 'pgdata', 'PG_VERSION'))) return preferred;
  mkdirSync(preferred, { recursive: true });
  try {
    execFileSync('chown', ['postgres:', preferred], { stdio: 'ignore' });
  } catch {
    // no postgres user yet: the packages are installed first, and pg-cluster.sh says what is wrong
    return preferred;
  }
  if (postgresCanWrite(preferred)) return preferred;
  const shared = path.join(SHARED_CLUSTERS_DIR, createHash('sha256').update(home).digest('hex').slice(0, 16), 'db');
  mkdirSync(path.dirname(shared), { recursive: true, mode: 0o755 });
  chmodSync(SHARED_CLUSTERS_DIR, 0o755);
  chmodSync(path.dirname(shared), 0o755);
  log(`the postgres OS user cannot enter ${home}: the embedded database lives in ${shared} instead`);
  return shared;
}

/** The process that runs `start` on a cluster writes its pid here, so that a later start knows an orphan. */
const OWNER_FILE = 'owner.pid';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * DATABASE_URL when set; otherwise the embedded cluster, created on first use. With `own` (the `start`
 * command), a cluster left running by a `start` that was killed is taken over: this process stops it when it
 * ends.
 */
export async function openDatabase(log: (line: string) => void, own = false): Promise<Database> {
  const configured = process.env.DATABASE_URL;
  if (configured) return { url: configured, startedHere: false };
  await ensurePostgresPackages();
  const cluster = new LocalCluster(embeddedClusterDir(log));
  if (!cluster.exists()) {
    log(`creating the embedded PostgreSQL 15 cluster in ${cluster.dir}`);
    await cluster.init({ database: 'neotoma' });
  }
  const wasRunning = await cluster.isRunning();
  const ownerFile = path.join(cluster.dir, OWNER_FILE);
  let startedHere = !wasRunning;
  if (wasRunning && own) {
    let owner: number | undefined;
    try {
      owner = Number(readFileSync(ownerFile, 'utf8').trim()) || undefined;
    } catch {
      owner = undefined; // started by another command, or by a version that kept no owner
    }
    if (owner !== undefined && owner !== process.pid && alive(owner)) {
      log(`the embedded database is already run by neotoma-ops start (pid ${owner}); using it (that process stops it)`);
    } else {
      log(`taking over the embedded database left running by a start that ended${owner ? ` (pid ${owner})` : ''}: it stops when this one ends`);
      startedHere = true;
    }
  }
  const url = await cluster.start();
  if (own && startedHere) writeFileSync(ownerFile, `${process.pid}\n`);
  return { url, cluster, startedHere };
}

/**
 * Runs `fn` against the database of this configuration; an embedded cluster this call had to start is
 * stopped again afterwards (one that `npm start` runs is left running).
 */
export async function withDatabase<T>(fn: (url: string) => Promise<T>, log: (line: string) => void = () => undefined): Promise<T> {
  const db = await openDatabase(log);
  try {
    return await fn(db.url);
  } finally {
    if (db.startedHere) await db.cluster?.stop();
  }
}

interface StateRow {
  migrations: number;
  jobs: Array<{ jobname: string; schedule: string; active: boolean }> | null;
  tables: string[] | null;
}

/** One screen describing the database: URL, migrations, pg_cron jobs and tables. */
export async function describeDatabase(url: string): Promise<string> {
  const client = await connect(url);
  try {
    const { rows } = await client.query<StateRow>(`
      SELECT (SELECT count(*)::int FROM neotoma_ops.pgmigrations) AS migrations,
             (SELECT json_agg(json_build_object('jobname', jobname, 'schedule', schedule, 'active', active) ORDER BY jobname)
                FROM cron.job) AS jobs,
             (SELECT array_agg(format('%I.%I', schemaname, tablename) ORDER BY schemaname, tablename)
                FROM pg_catalog.pg_tables WHERE schemaname IN ('public', 'neotoma_ops')) AS tables`);
    const s = rows[0];
    const lines = [
      `database:   ${url}`,
      `migrations: ${s?.migrations ?? 0} applied`,
      `pg_cron:    ${s?.jobs?.length ? '' : 'no jobs'}`,
      ...(s?.jobs ?? []).map((j) => `  - ${j.jobname.padEnd(32)} ${j.schedule.padEnd(14)} ${j.active ? 'active' : 'paused'}`),
      `tables:     ${(s?.tables ?? []).join(', ')}`,
    ];
    return lines.join('\n');
  } finally {
    await client.end();
  }
}

/**
 * `neotoma-ops start`: database up, migrations applied, then the upload worker (STORAGE_BACKEND, fs by default)
 * until SIGINT/SIGTERM: graceful worker shutdown, then the embedded cluster is stopped.
 */
export async function start(log: Log = createLog()): Promise<void> {
  const db = await openDatabase(log, true);
  // from here on, whatever ends this process stops the cluster it started: a second Ctrl-C stops it at once
  const stopNow = (sig: NodeJS.Signals): void => {
    log(`${sig} received again: stopping the embedded database now, without waiting for uploads in flight`, undefined, 'warn');
    if (db.cluster && db.startedHere) db.cluster.stopSync();
  };
  // listening before anything is announced: a Ctrl-C sent the moment "running" appears must find its handler
  const signal = onStopSignals({ urgent: stopNow, keepAlive: true, onFirst: (sig) => log(`${sig} received, stopping`) }).received;
  try {
    const result = await migrateUp(db.url, { log });
    log(`migrations: ${result.migrations.length} newly applied, ${result.sqlFiles.length} SQL files (re)applied`);
    // the banner is for the person at the terminal: plain lines, whatever the log format
    console.log(await describeDatabase(db.url));
    console.log('running; press Ctrl-C to stop');
    await runWorker({ databaseUrl: db.url, log, stopSignal: signal });
  } finally {
    if (db.cluster && db.startedHere) {
      await db.cluster.stop();
      rmSync(path.join(db.cluster.dir, OWNER_FILE), { force: true });
      log('embedded database stopped');
    }
  }
}
