import type pg from 'pg';
import type { Log } from '../log.js';
import type { StorageAdapter, StorageError } from '../storage/types.js';
import { UploadWorker, type EndReason, type UploadOutcome, type WorkerHealth, type WorkerStats } from './worker.js';

export interface DrainOptions {
  /** The database; a pool of at least `concurrency + 1` connections (a transaction-mode pooler is fine). */
  pool: pg.Pool;
  storage: StorageAdapter;
  /** Recorded as `locked_by` on claimed jobs (default `{hostname}-{pid}`). */
  workerId?: string;
  /** Return within this many ms (default: no budget, drain until nothing is due). */
  budgetMs?: number;
  /** Uploads at once, also the claim batch size. Defaults of this and the next settings: WORKER_DEFAULTS. */
  concurrency?: number;
  /** Lease per claim and extension (s). */
  leaseSeconds?: number;
  /** Time allowed for one upload (ms; at most a third of the budget). */
  uploadTimeoutMs?: number;
  /** Without a budget: on stop, time in-flight uploads get before they go back to the queue (ms). */
  shutdownGraceMs?: number;
  completionBatchSize?: number;
  /** Ends the drain early (in-flight uploads finish within the grace period or go back to the queue). */
  signal?: AbortSignal;
  log?: Log;
  /** The setting that names the database, for messages that say what to fix (default `DATABASE_URL`). */
  databaseSetting?: string;
  onOutcome?: (outcome: UploadOutcome, seconds: number, error?: StorageError) => void;
  /** Receives the drain's health reporter (for `/healthz`). */
  onHealth?: (health: () => WorkerHealth) => void;
}

/** What one drain did: the worker counts, how long it took and why it ended. */
export interface DrainSummary extends WorkerStats {
  worker_id: string;
  started_at: string;
  duration_ms: number;
  budget_ms: number | null;
  /**
   * `drained`: nothing more was due; `budget`: the budget ran out while work may remain; `stopped`: asked to stop;
   * `storage_unavailable`: storage refuses every upload (`storage_error` says why and what to do).
   */
  ended: EndReason;
  storage_error: string | null;
}

/**
 * Stores what is due now through `storage`, within `budgetMs` when given: claims with fenced leases, uploads,
 * completes or fails each job (retryable or not), extends leases while uploading, and stops claiming early enough
 * that every claimed job is completed or back in the queue when it returns. The one queue loop behind
 * `neotoma-ops worker --once` and the Edge Function; it runs wherever `pg` and `fetch` run.
 */
export async function drainUploadQueue(options: DrainOptions): Promise<DrainSummary> {
  const startedAt = new Date();
  const t0 = performance.now();
  const worker = new UploadWorker({
    pool: options.pool,
    storage: options.storage,
    once: true,
    ...(options.budgetMs !== undefined ? { budgetMs: options.budgetMs } : {}),
    ...(options.workerId !== undefined ? { workerId: options.workerId } : {}),
    ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
    ...(options.leaseSeconds !== undefined ? { leaseSeconds: options.leaseSeconds } : {}),
    ...(options.uploadTimeoutMs !== undefined ? { uploadTimeoutMs: options.uploadTimeoutMs } : {}),
    ...(options.shutdownGraceMs !== undefined ? { shutdownGraceMs: options.shutdownGraceMs } : {}),
    ...(options.completionBatchSize !== undefined ? { completionBatchSize: options.completionBatchSize } : {}),
    ...(options.log ? { log: options.log } : {}),
    ...(options.databaseSetting ? { databaseSetting: options.databaseSetting } : {}),
    ...(options.onOutcome ? { onOutcome: options.onOutcome } : {}),
  });
  options.onHealth?.(() => worker.health());
  const stop = (): void => worker.stop();
  if (options.signal?.aborted) stop();
  options.signal?.addEventListener('abort', stop, { once: true });
  try {
    const stats = await worker.run();
    return {
      worker_id: worker.workerId,
      started_at: startedAt.toISOString(),
      duration_ms: Math.round(performance.now() - t0),
      budget_ms: options.budgetMs ?? null,
      ended: worker.ended ?? 'drained',
      storage_error: worker.ended === 'storage_unavailable' ? (worker.storageError?.message ?? null) : null,
      ...stats,
    };
  } finally {
    options.signal?.removeEventListener('abort', stop);
  }
}
