import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { migratedCluster } from '../upload.js';
import { LEASE_SECONDS, RUN_TIMEOUT_SECONDS, sleep, type SoakOptions, type SoakReport } from './config.js';
import { SoakContext } from './context.js';
import { startDriver } from './driver.js';
import { faultFiles, faultyStorageEnv, healStorage, producerStorage, startChaos } from './faults.js';
import { checkInvariants } from './invariants.js';
import { createUsers, startLoad } from './load.js';
import { progressLine, soakFigures } from './report.js';
import { WorkerFleet } from './workers.js';

/** Waits until no job and no run is active (at most 60 s); returns the seconds since `drainStart`. */
async function drain(ctx: SoakContext, drainStart: number): Promise<number> {
  const active = async (): Promise<{ jobs: number; runs: number }> => {
    const { rows } = await ctx.pool.query<{ jobs: number; runs: number }>(
      `SELECT (SELECT count(*) FROM public.upload_queue WHERE status IN ('pending', 'in_progress'))::int AS jobs,
              (SELECT count(*) FROM public.interpretation_runs WHERE status IN ('pending', 'running'))::int AS runs`,
    );
    return rows[0]!;
  };
  for (;;) {
    const a = await ctx.retryingOutage('drain', active);
    if (a.jobs === 0 && a.runs === 0) break;
    if (Date.now() - drainStart > 60_000) {
      ctx.unexpected.push(`drain: ${a.jobs} jobs and ${a.runs} runs still active after 60 s`);
      break;
    }
    await sleep(250);
  }
  return (Date.now() - drainStart) / 1000;
}

/** One soak, start to report: load with faults and chaos, then drain, stop and check (see ./index.ts). */
export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const t0 = Date.now();
  const log = options.log ?? (() => undefined);
  const seconds = options.seconds;
  const nWorkers = options.workers ?? 4;
  const nUsers = options.users ?? 100;
  const filesPerSecond = options.filesPerSecond ?? 25;
  const runsPerSecond = options.runsPerSecond ?? 4;
  const tickMs = options.tickMs ?? 1000;

  const work = await mkdtemp(path.join(os.tmpdir(), 'neotoma-soak-'));
  const files = faultFiles(work);
  const db = await migratedCluster();
  const pool = new pg.Pool({ connectionString: db.url, max: 40, connectionTimeoutMillis: 5000 });
  pool.on('error', () => undefined); // idle clients dropped by the restart: the next query reconnects
  const ctx = new SoakContext(t0, pool, log);
  const fleet = new WorkerFleet(nWorkers, {
    DATABASE_URL: db.url,
    ...faultyStorageEnv(files),
    WORKER_LEASE_SECONDS: String(LEASE_SECONDS),
    WORKER_POLL_INTERVAL_MS: '250',
    WORKER_CONCURRENCY: '4',
    UPLOAD_TIMEOUT_MS: '1500',
    SHUTDOWN_GRACE_MS: '2000',
  });
  const stoppers: Array<() => void> = [];
  try {
    await pool.query(`UPDATE neotoma_ops.interpretation_settings SET run_timeout = $1::interval, updated_at = now()`, [
      `${RUN_TIMEOUT_SECONDS} seconds`,
    ]);
    const users = await createUsers(pool, nUsers);
    await fleet.startAll();

    const load = startLoad(ctx, users, producerStorage(files), { filesPerSecond, runsPerSecond });
    stoppers.push(() => load.stop());
    const driver = startDriver(ctx, tickMs);
    stoppers.push(() => driver.stop());
    const chaos = startChaos(ctx, db, fleet, seconds);
    stoppers.push(() => chaos.stop()); // on a failure too, so the killer does not go on restarting workers
    const progress = setInterval(() => log(progressLine(ctx)), 10_000);
    stoppers.push(() => clearInterval(progress));

    await sleep(seconds * 1000);

    // Stop producing, end the chaos, heal the storage, bring every worker back, and drain.
    load.stop();
    chaos.stop();
    const drainStart = Date.now();
    await chaos.done();
    await load.settled();
    await healStorage(files);
    fleet.restartExited();
    const drainSeconds = await drain(ctx, drainStart);
    driver.stop();
    clearInterval(progress);
    await driver.done;

    // Graceful stop of the workers: each must exit 0 with its summary line.
    const stopped = await fleet.stopGracefully();

    const checked = await checkInvariants(ctx, files, tickMs, stopped);
    const figures = soakFigures(ctx.f, checked, drainSeconds);
    return { seconds, wallSeconds: (Date.now() - t0) / 1000, figures, faults: checked.faults, invariants: checked.invariants, unexpectedErrors: ctx.unexpected };
  } finally {
    for (const s of stoppers) s();
    fleet.killAll();
    await pool.end().catch(() => undefined);
    await db.destroy();
    await rm(work, { recursive: true, force: true });
  }
}
