import type { Log } from '../log.js';
import { OperationalError } from '../errors.js';
import { createStorageFromEnv } from '../storage/index.js';
import type { StorageAdapter, StorageError } from '../storage/types.js';
import { createPool } from '../db/connect.js';
import { onStopSignals } from '../signals.js';
import { workerSettingsFromEnv } from './config.js';
import { drainUploadQueue } from './drain.js';
import { startWorkerMetrics } from './metrics.js';
import { UploadWorker, type UploadOutcome, type WorkerStats } from './worker.js';

export interface RunWorkerOptions {
  databaseUrl: string;
  /** Drain what is due now, then return. */
  once?: boolean;
  /** With `once`: return within this many ms. */
  budgetMs?: number;
  /** Uploads at once (default: WORKER_CONCURRENCY, else WORKER_DEFAULTS). */
  concurrency?: number;
  /** Recorded on claimed jobs (default {hostname}-{pid}). */
  workerId?: string;
  env?: Record<string, string | undefined>;
  log?: Log;
  /** Storage to use instead of the one STORAGE_BACKEND describes. */
  storage?: StorageAdapter;
  /** Resolves when the worker should stop (default: the first SIGINT, SIGTERM or SIGHUP). */
  stopSignal?: Promise<unknown>;
}

/** `neotoma-ops worker [--once] [--concurrency N] [--worker-id ID]`, other settings from the environment. */
export async function runWorker(options: RunWorkerOptions): Promise<WorkerStats> {
  const env = options.env ?? process.env;
  const log = options.log ?? ((line: string) => console.log(line));
  const settings = workerSettingsFromEnv(env);
  const concurrency = options.concurrency ?? settings.concurrency;
  const workerId = options.workerId?.trim();
  if (options.workerId !== undefined && !workerId) throw new OperationalError('--worker-id must not be empty.');
  const storage = options.storage ?? (await createStorageFromEnv(env));
  if (options.budgetMs !== undefined && !options.once) throw new OperationalError('--budget needs --once.');
  const metrics = await startWorkerMetrics(options.databaseUrl, env, log);
  const onOutcome = metrics ? { onOutcome: (o: UploadOutcome, s: number, e?: StorageError) => metrics.onOutcome(o, s, e) } : {};
  const signals = options.stopSignal
    ? undefined
    : onStopSignals({
        onFirst: (sig) => log(`${sig} received: finishing uploads in flight`),
        urgent: (sig) => log(`${sig} received again: exiting without waiting`),
      });
  const stop = options.stopSignal ?? signals!.received;
  try {
    if (options.once) {
      const pool = createPool(options.databaseUrl, concurrency + 2, `neotoma-ops worker ${workerId ?? ''}`.trim().slice(0, 63));
      const stopped = new AbortController();
      void stop.then(() => stopped.abort());
      try {
        const summary = await drainUploadQueue({
          ...settings,
          pool,
          storage,
          concurrency,
          log,
          signal: stopped.signal,
          ...(options.budgetMs !== undefined ? { budgetMs: options.budgetMs } : {}),
          ...(workerId ? { workerId } : {}),
          ...onOutcome,
          ...(metrics ? { onHealth: (h) => metrics.setWorker(h) } : {}),
        });
        if (summary.ended === 'storage_unavailable') {
          throw new OperationalError(`storage refuses every upload; nothing more was claimed: ${summary.storage_error}`);
        }
        return summary;
      } finally {
        await pool.end().catch(() => undefined);
      }
    }
    const worker = new UploadWorker({
      ...settings,
      concurrency,
      databaseUrl: options.databaseUrl,
      storage,
      log,
      ...(workerId ? { workerId } : {}),
      ...onOutcome,
    });
    metrics?.setWorker(() => worker.health());
    void stop.then(() => worker.stop());
    return await worker.run();
  } finally {
    signals?.dispose();
    await metrics?.close();
    if (!options.storage) await storage.close?.();
  }
}
