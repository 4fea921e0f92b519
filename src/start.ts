import path from 'node:path';
import { connect } from './db/connect.js';
import { ensurePostgresPackages, LocalCluster } from './db/cluster.js';
import { migrateUp } from './migrate.js';
import { neotomaHome } from './paths.js';
import { runWorker } from './worker/command.js';

export interface Database {
  url: string;
  /** The embedded cluster, when DATABASE_URL is unset. */
  cluster?: LocalCluster;
  /** True when this process started the embedded cluster (and so should stop it when done). */
  startedHere: boolean;
}

/** DATABASE_URL when set; otherwise the embedded cluster under NEOTOMA_HOME, created on first use. */
export async function openDatabase(log: (line: string) => void): Promise<Database> {
  const configured = process.env.DATABASE_URL;
  if (configured) return { url: configured, startedHere: false };
  await ensurePostgresPackages();
  const cluster = new LocalCluster(path.join(neotomaHome(), 'db'));
  if (!cluster.exists()) {
    log(`creating the embedded PostgreSQL 15 cluster in ${cluster.dir}`);
    await cluster.init({ database: 'neotoma' });
  }
  const wasRunning = await cluster.isRunning();
  const url = await cluster.start();
  return { url, cluster, startedHere: !wasRunning };
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

/** Resolves on the first SIGINT or SIGTERM, keeping the process alive until then. */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const keepAlive = setInterval(() => undefined, 1 << 30);
    const onSignal = (sig: NodeJS.Signals): void => {
      clearInterval(keepAlive);
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      resolve(sig);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

/**
 * `neotoma-ops start`: database up, migrations applied, then the upload worker (STORAGE_BACKEND, fs by default)
 * until SIGINT/SIGTERM: graceful worker shutdown, then the embedded cluster is stopped.
 */
export async function start(log: (line: string) => void = (l) => console.log(l)): Promise<void> {
  const db = await openDatabase(log);
  try {
    const result = await migrateUp(db.url, { log });
    log(`migrations: ${result.migrations.length} newly applied, ${result.sqlFiles.length} SQL files (re)applied`);
    log(await describeDatabase(db.url));
    log('running; press Ctrl-C to stop');
    const signal = untilSignal().then((sig) => log(`${sig} received, stopping`));
    await runWorker({ databaseUrl: db.url, log, stopSignal: signal });
  } finally {
    if (db.cluster && db.startedHere) {
      await db.cluster.stop();
      log('embedded database stopped');
    }
  }
}
