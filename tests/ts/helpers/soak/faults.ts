import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FaultyStorage, PartialWriteFsStorage, type FaultSettings } from '../faulty-storage.mjs';
import type { Throwaway } from '../db.js';
import { sleep } from './config.js';
import type { SoakContext } from './context.js';
import type { WorkerFleet } from './workers.js';

/** 20 % of writes fail, split over every fault kind (a few 4xx to exercise the non-retryable path). */
export const SOAK_FAULTS: FaultSettings = {
  latencyMs: [0, 250],
  error5xx: 0.08,
  error429: 0.04,
  reset: 0.03,
  hang: 0.02,
  partial: 0.02,
  error4xx: 0.01,
};

/** Where the fault-injecting storage keeps its objects, reads its control file and logs its writes. */
export interface FaultFiles {
  fsRoot: string;
  controlFile: string;
  logFile: string;
}

export function faultFiles(work: string): FaultFiles {
  return {
    fsRoot: path.join(work, 'storage'),
    controlFile: path.join(work, 'faults-control.json'),
    logFile: path.join(work, 'writes.log'),
  };
}

/** The environment that gives a worker process the same faulty storage as the producer (loaded as a storage module). */
export function faultyStorageEnv(files: FaultFiles): Record<string, string> {
  return {
    STORAGE_BACKEND: 'module',
    STORAGE_MODULE: fileURLToPath(new URL('../faulty-storage.mjs', import.meta.url)),
    STORAGE_FS_ROOT: files.fsRoot,
    STORAGE_FAULTS: JSON.stringify({ inner: 'fs', ...SOAK_FAULTS, controlFile: files.controlFile, logFile: files.logFile }),
  };
}

/** The producer's storage: the same faults on the same folder, control file and write log as the workers'. */
export function producerStorage(files: FaultFiles): FaultyStorage {
  return new FaultyStorage({
    inner: new PartialWriteFsStorage({ root: files.fsRoot }),
    ...SOAK_FAULTS,
    controlFile: files.controlFile,
    logFile: files.logFile,
  });
}

/** Heals the storage: every faulty adapter re-reads the control file and passes writes straight through. */
export async function healStorage(files: FaultFiles): Promise<void> {
  await writeFile(files.controlFile, JSON.stringify({ enabled: false }));
}

/** The write log of every adapter: writes counted by outcome, and how many stored each key. */
export async function readWriteLog(logFile: string): Promise<{ faults: Record<string, number>; storedWrites: Map<string, number> }> {
  const lines = (await readFile(logFile, 'utf8').catch(() => ''))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { key: string; outcome: string; stored: boolean });
  const faults: Record<string, number> = {};
  const storedWrites = new Map<string, number>();
  for (const l of lines) {
    faults[l.outcome] = (faults[l.outcome] ?? 0) + 1;
    if (l.stored) storedWrites.set(l.key, (storedWrites.get(l.key) ?? 0) + 1);
  }
  return { faults, storedWrites };
}

export interface Chaos {
  stop(): void;
  /** Resolves when the restart has ended and the killer has stopped. */
  done(): Promise<void>;
}

/** Chaos: SIGKILL a random worker every 2-6 s (restarted 0.3-1.5 s later); one database restart at 40 %. */
export function startChaos(ctx: SoakContext, db: Throwaway, fleet: WorkerFleet, seconds: number): Chaos {
  const { f, pool } = ctx;
  let chaos = true;
  const killer = (async () => {
    while (chaos) {
      await sleep(2000 + Math.random() * 4000);
      if (!chaos) break;
      // a worker holding a lease when there is one (so the kill interrupts uploads), else any
      const busy = await pool
        .query<{ locked_by: string }>(`SELECT DISTINCT locked_by FROM public.upload_queue WHERE status = 'in_progress'`)
        .then((r) => r.rows.map((x) => x.locked_by))
        .catch(() => [] as string[]);
      const busySlots = fleet.workers.flatMap((w, i) => (w && busy.some((id) => w.output.some((l) => l.startsWith(`worker ${id}:`))) ? [i] : []));
      const slot = busySlots.length > 0 ? busySlots[Math.floor(Math.random() * busySlots.length)]! : Math.floor(Math.random() * fleet.size);
      const w = fleet.workers[slot];
      if (!w) continue;
      w.child.kill('SIGKILL');
      await w.exited;
      f.kills++;
      await sleep(300 + Math.random() * 1200);
      fleet.start(slot);
    }
  })();
  const restarter = (async () => {
    await sleep(seconds * 400);
    if (!chaos) return;
    ctx.restarting = true;
    const a = Date.now();
    ctx.log(`soak: restarting PostgreSQL at ${((a - ctx.t0) / 1000).toFixed(1)} s`);
    await db.cluster.stop();
    await sleep(500);
    const url = await db.cluster.start();
    if (url !== db.url) ctx.unexpected.push(`the database came back on another URL: ${url}`);
    ctx.restartWindows.push([a, Date.now()]);
    ctx.restarting = false;
    f.dbRestarts++;
  })();
  return {
    stop() {
      chaos = false;
    },
    async done() {
      await restarter;
      await killer;
    },
  };
}
