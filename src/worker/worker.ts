import { createHash, randomUUID } from 'node:crypto';
import os from 'node:os';
import type pg from 'pg';
import { Backoff, sleep } from '../db/backoff.js';
import { connect, createPool } from '../db/connect.js';
import { isFinalDatabaseAnswer } from '../db/errors.js';
import { untilAnswered } from '../db/retry.js';
import { OperationalError } from '../errors.js';
import type { Fields, Level, Log } from '../log.js';
import { toStorageError } from '../storage/classify.js';
import { StorageError, type StorageAdapter } from '../storage/types.js';
import { CompletionBatcher } from './completions.js';
import { WORKER_DEFAULTS } from './config.js';
import { queue, type ClaimedJob } from './queue.js';

export const UPLOAD_QUEUE_CHANNEL = 'upload_queue';

/** Payloads larger than this are fetched from the database in slices of this size. */
const SLICE_BYTES = 4 << 20;

export interface WorkerOptions {
  /** Where to connect; the listener needs it. With `once` and `pool`, it may be left out. */
  databaseUrl?: string;
  /** A pool to use instead of one of the worker's own (not ended by the worker). */
  pool?: pg.Pool;
  storage: StorageAdapter;
  /** Recorded as `locked_by` on claimed jobs (default `{hostname}-{pid}`). */
  workerId?: string;
  /** Uploads running at once; also the claim batch size. Defaults of this and the next settings: WORKER_DEFAULTS. */
  concurrency?: number;
  /**
   * Most completions recorded in one call (default 64). Finished uploads whose completion is still being
   * recorded do not hold a slot; claiming pauses while this many of them wait.
   */
  completionBatchSize?: number;
  /** Claim this often even without a notification (ms). */
  pollIntervalMs?: number;
  /** Lease taken per claim and per extension (s); extended every third of it while uploading. */
  leaseSeconds?: number;
  /** Time allowed for one upload (ms). */
  uploadTimeoutMs?: number;
  /** On stop, time in-flight uploads get to finish before they are failed back to the queue (ms). */
  shutdownGraceMs?: number;
  /** Drain what is due now, then return (no LISTEN). */
  once?: boolean;
  /**
   * With `once`: return within this many ms. Uploads get at most a third of it; claiming stops early enough
   * that every claimed upload can run its full timeout and be reported before the budget ends.
   */
  budgetMs?: number;
  /** Called once per claimed job with how it ended, how long it took and, when it failed, the storage error (for metrics). */
  onOutcome?: (outcome: UploadOutcome, seconds: number, error?: StorageError) => void;
  /** The setting that names the database, for messages that say what to fix (default `DATABASE_URL`). */
  databaseSetting?: string;
  log?: Log;
}

/** The bucket of jobs that name none (the queue column's default), checked before the first claim. */
export const DEFAULT_BUCKET = 'sources';

/** What `/healthz` says about this worker (see `UploadWorker.health()`). */
export interface WorkerHealth {
  healthy: boolean;
  reasons: string[];
  /** Seconds since a claim last got an answer from the database (0 jobs included); null: never. */
  last_claim_age_seconds: number | null;
  consecutive_claim_failures: number;
  last_error: string | null;
  /** `listening`, `polling (…)` when notifications cannot arrive (a transaction-mode pooler), or `reconnecting since …`. */
  notifications: string;
  /** Set while storage refuses every upload (a missing bucket, a key of another project): what it said, with the fix. */
  storage_error: string | null;
}

/** While storage refuses every upload, it is checked again this often (at most), with backoff from 1 s. */
const STORAGE_RECHECK_MAX_MS = 30_000;
/** A check that gets no answer in this time proves nothing: the uploads go ahead (and are retried if storage is down). */
const STORAGE_CHECK_TIMEOUT_MS = 10_000;
/** How long the notification connection may stay down, or the claim loop stay still, before /healthz says 503. */
const HEALTH_GRACE_MS = 60_000;
/** Claim attempts in a row that may fail before /healthz says 503. */
const CLAIM_FAILURES_UNHEALTHY = 3;
/** A notification this worker sends itself must come back within this time, or notifications do not arrive. */
const PROBE_TIMEOUT_MS = 3000;
const PROBE_EVERY_MS = 60_000;

export interface WorkerStats {
  claimed: number;
  completed: number;
  /** Failed back to the queue as retryable (storage error, timeout). */
  retried: number;
  /** Failed as not retryable (4xx, permissions, corrupt bytes). */
  failed: number;
  /** Failed back at shutdown because the grace period ran out. */
  released: number;
  /** Jobs whose lease was taken over before this worker could report (another worker owns them now). */
  lost: number;
}

/**
 * How one claimed job ended for this worker: stored and completed; failed back as retryable or as permanent;
 * released at shutdown; or lost (its lease passed to another worker).
 */
export type UploadOutcome = 'stored' | 'retryable' | 'permanent' | 'released' | 'lost';

/**
 * Why `run()` returned: `drained` (with `once`: nothing more was due), `budget` (the time budget ran out while work
 * may remain), `stopped` (`stop()` or a signal), `storage_unavailable` (with `once`: storage refuses every upload,
 * see `storageError`; nothing more was claimed).
 */
export type EndReason = 'drained' | 'budget' | 'stopped' | 'storage_unavailable';

class LeaseLost extends Error {
  constructor() {
    super('lease lost');
  }
}

class ShuttingDown extends Error {
  constructor() {
    super('worker shutting down');
  }
}

interface InFlight {
  controller: AbortController;
  done: Promise<void>;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The upload worker: LISTENs on `upload_queue` and polls; claims due jobs in batches (fenced leases); uploads each
 * with a timeout while extending its lease; completes or fails it (retryable or not). Survives the database going
 * away (backoff, reconnect). `stop()` stops claiming, lets in-flight uploads finish within the grace period, then
 * fails the rest back to the queue as retryable.
 */
export class UploadWorker {
  readonly workerId: string;
  readonly stats: WorkerStats = { claimed: 0, completed: 0, retried: 0, failed: 0, released: 0, lost: 0 };
  private readonly storage: StorageAdapter;
  private readonly databaseUrl: string | undefined;
  private readonly concurrency: number;
  private readonly pollIntervalMs: number;
  private readonly leaseSeconds: number;
  private readonly uploadTimeoutMs: number;
  private shutdownGraceMs: number;
  private readonly once: boolean;
  private readonly budgetMs: number | undefined;
  /** With a budget: claiming stops at this time, and in-flight work is released at `deadline`. */
  private claimUntil: number | undefined;
  private deadline: number | undefined;
  private endReason: EndReason | undefined;
  private readonly ownsPool: boolean;
  private readonly log: Log;
  private readonly onOutcome: ((outcome: UploadOutcome, seconds: number, error?: StorageError) => void) | undefined;
  private readonly databaseSetting: string;
  /** Set while storage refuses every upload: no claims until `storage.check()` passes again. */
  private storageBlocked: { error: StorageError; bucket: string } | undefined;
  private readonly pool: pg.Pool;
  private readonly completions: CompletionBatcher;
  /** Jobs holding an upload slot (claimed, upload not finished). */
  private readonly inFlight = new Map<string, InFlight>();
  /** Jobs whose upload is done and whose completion is being recorded; they no longer hold a slot. */
  private readonly finishing = new Set<InFlight>();
  private readonly stopController = new AbortController();
  private stopping = false;
  private wakeFlag = false;
  private wakeWaiter: (() => void) | undefined;
  private listener: pg.Client | undefined;
  private readonly startedAt = Date.now();
  private lastClaimAt: number | undefined;
  private lastLoopAt = Date.now();
  private claimFailures = 0;
  private lastError: string | null = null;
  private notifications: { state: 'starting' | 'listening' | 'polling' | 'reconnecting'; since: number } = {
    state: 'starting',
    since: Date.now(),
  };
  private probeWaiter: { nonce: string; resolve: () => void } | undefined;

  constructor(options: WorkerOptions) {
    this.databaseUrl = options.databaseUrl;
    this.storage = options.storage;
    this.once = options.once ?? false;
    if (!options.pool && !options.databaseUrl) throw new Error('UploadWorker needs databaseUrl or pool');
    if (!this.once && !options.databaseUrl) throw new Error('a long-running UploadWorker needs databaseUrl (for LISTEN)');
    if (options.budgetMs !== undefined && (!this.once || !(options.budgetMs >= 100))) {
      throw new Error('budgetMs needs once and at least 100 ms');
    }
    this.budgetMs = options.budgetMs;
    this.workerId = options.workerId ?? `${os.hostname()}-${process.pid}`;
    this.concurrency = options.concurrency ?? WORKER_DEFAULTS.concurrency;
    this.pollIntervalMs = options.pollIntervalMs ?? WORKER_DEFAULTS.pollIntervalMs;
    this.leaseSeconds = options.leaseSeconds ?? WORKER_DEFAULTS.leaseSeconds;
    const uploadTimeoutMs = options.uploadTimeoutMs ?? WORKER_DEFAULTS.uploadTimeoutMs;
    this.uploadTimeoutMs = this.budgetMs === undefined ? uploadTimeoutMs : Math.min(uploadTimeoutMs, Math.floor(this.budgetMs / 3));
    this.shutdownGraceMs = options.shutdownGraceMs ?? WORKER_DEFAULTS.shutdownGraceMs;
    this.log = options.log ?? ((line) => console.log(line));
    this.onOutcome = options.onOutcome;
    this.databaseSetting = options.databaseSetting ?? 'DATABASE_URL';
    this.ownsPool = !options.pool;
    this.pool = options.pool ??
      createPool(options.databaseUrl!, this.concurrency + 2, `neotoma-ops worker ${this.workerId}`.slice(0, 63));
    this.completions = new CompletionBatcher(this.pool, options.completionBatchSize ?? 64);
  }

  /**
   * Whether this worker is doing its job: its claims reach the database (fewer than 3 failures in a row), its
   * claim loop is not stuck, and its notification connection is not down for more than a minute (a worker
   * behind a transaction-mode pooler, where notifications cannot arrive, polls instead and is healthy).
   */
  health(now = Date.now()): WorkerHealth {
    const reasons: string[] = [];
    if (this.claimFailures >= CLAIM_FAILURES_UNHEALTHY) {
      reasons.push(`cannot claim upload jobs: ${this.claimFailures} attempts failed in a row (${this.lastError ?? 'unknown error'})`);
    }
    const still = now - this.lastLoopAt;
    if (!this.stopping && still > Math.max(HEALTH_GRACE_MS, 3 * this.pollIntervalMs)) {
      reasons.push(`the claim loop has not run for ${Math.round(still / 1000)} s`);
    }
    const n = this.notifications;
    if (n.state === 'reconnecting' && now - n.since > HEALTH_GRACE_MS) {
      reasons.push(`the notification connection has been down for ${Math.round((now - n.since) / 1000)} s`);
    }
    if (this.storageBlocked) reasons.push(`storage refuses every upload, claiming paused: ${this.storageBlocked.error.message}`);
    const notifications =
      n.state === 'polling' ? `polling every ${this.pollIntervalMs} ms (notifications do not arrive on this connection)`
        : n.state === 'reconnecting' ? `reconnecting since ${new Date(n.since).toISOString()}`
          : n.state;
    return {
      healthy: reasons.length === 0,
      reasons,
      last_claim_age_seconds: this.lastClaimAt === undefined ? null : Math.round((now - this.lastClaimAt) / 100) / 10,
      consecutive_claim_failures: this.claimFailures,
      last_error: this.lastError,
      notifications,
      storage_error: this.storageBlocked?.error.message ?? null,
    };
  }

  /** Asks the worker to stop (idempotent); `run()` resolves once in-flight work is settled. */
  stop(): void {
    if (this.stopping) return;
    this.endReason ??= 'stopped';
    this.stopping = true;
    this.say('stopping: no new claims');
    this.stopController.abort();
    this.wake();
    void this.listener?.end().catch(() => undefined);
  }

  /** Why the last `run()` returned. */
  get ended(): EndReason | undefined {
    return this.endReason;
  }

  /** With `ended === 'storage_unavailable'`: what storage said, with the fix. */
  get storageError(): StorageError | undefined {
    return this.storageBlocked?.error;
  }

  /**
   * Asks storage whether uploads into `bucket` can succeed: a systemic refusal (missing bucket, foreign key) blocks
   * claiming until a later check passes; any other answer (storage unreachable, a 5xx) is left to the uploads.
   */
  private async checkStorage(bucket: string): Promise<boolean> {
    if (!this.storage.check) return true;
    try {
      await this.storage.check(bucket, AbortSignal.any([this.stopController.signal, AbortSignal.timeout(STORAGE_CHECK_TIMEOUT_MS)]));
    } catch (err) {
      const e = toStorageError(err, this.storage.backend, `check of bucket ${bucket}`);
      if (!e.systemic) return true;
      this.blockStorage(e, bucket);
      return false;
    }
    if (this.storageBlocked) {
      this.say(
        `storage accepts uploads into ${bucket} again: claiming resumes. Jobs that failed meanwhile wait in ` +
          '"failed": run "neotoma-ops requeue --all-failed".',
        { bucket },
        'warn',
      );
      this.storageBlocked = undefined;
    }
    return true;
  }

  private blockStorage(error: StorageError, bucket: string): void {
    if (this.storageBlocked) return;
    this.storageBlocked = { error, bucket };
    this.say(`storage refuses every upload; no more claims until it accepts them: ${error.message}`,
      { bucket, status: error.status, code: error.code }, 'error');
  }

  /** Runs until `stop()` (or, with `once`, until nothing is due or the budget ends) and returns what it did. */
  async run(): Promise<WorkerStats> {
    this.say(
      `started (${this.storage.backend} storage, concurrency ${this.concurrency}, lease ${this.leaseSeconds} s, ` +
        `${this.once ? (this.budgetMs === undefined ? 'once' : `once within ${this.budgetMs} ms`) : `poll every ${this.pollIntervalMs} ms`})`,
    );
    const listening = this.once ? Promise.resolve() : this.listen();
    const backoff = new Backoff(250, 15_000);
    let dbDown = false;
    let budgetTimer: NodeJS.Timeout | undefined;
    if (this.budgetMs !== undefined) {
      // kept at the end for recording outcomes: a sixth of the budget, at most 5 s
      const reserveMs = Math.min(5000, Math.floor(this.budgetMs / 6));
      const now = Date.now();
      this.deadline = now + this.budgetMs - reserveMs;
      this.claimUntil = this.deadline - this.uploadTimeoutMs;
      // normally nothing is in flight by then; whatever is (a slow payload read) goes back to the queue at once
      budgetTimer = setTimeout(() => {
        this.endReason ??= 'budget';
        this.shutdownGraceMs = 0;
        this.stop();
      }, this.deadline - now);
    }
    const storageBackoff = new Backoff(1000, STORAGE_RECHECK_MAX_MS);
    try {
      await this.checkStorage(DEFAULT_BUCKET);
      while (!this.stopping) {
        this.lastLoopAt = Date.now();
        if (this.storageBlocked) {
          if (this.once) {
            // a drain cannot wait for an operator: it ends once what it holds is settled
            if (this.inFlight.size === 0 && this.finishing.size === 0) {
              this.endReason ??= 'storage_unavailable';
              break;
            }
            await this.waitForWake(1000);
            continue;
          }
          await sleep(storageBackoff.next(), this.stopController.signal).catch(() => undefined);
          if (!this.stopping && (await this.checkStorage(this.storageBlocked.bucket))) storageBackoff.reset();
          continue;
        }
        const claimWindowOpen = this.claimUntil === undefined || Date.now() < this.claimUntil;
        // A slot frees when its upload ends, so claiming overlaps the recording of completions (which go in
        // batches). Claiming pauses while a full completion batch is still waiting to be recorded.
        const free = !claimWindowOpen || this.finishing.size >= this.completions.maxBatch ? 0 : this.concurrency - this.inFlight.size;
        let claimed = 0;
        if (free > 0) {
          try {
            const jobs = await this.claim(free);
            if (dbDown) this.say('database reachable again');
            dbDown = false;
            backoff.reset();
            this.lastClaimAt = Date.now();
            this.claimFailures = 0;
            claimed = jobs.length;
            this.stats.claimed += claimed;
            for (const job of jobs) this.launch(job);
          } catch (err) {
            this.claimFailures += 1;
            this.lastError = describe(err);
            if (isFinalDatabaseAnswer(err)) {
              throw new OperationalError(
                `cannot claim upload jobs: ${describe(err)}. Is the database migrated? Run "neotoma-ops migrate up" ` +
                  `against the database ${this.databaseSetting} names, and check that the role may execute the queue functions.`,
                { cause: err },
              );
            }
            if (!dbDown) this.say(`cannot claim: ${describe(err)}; retrying with backoff`, { error: describe(err) }, 'warn');
            dbDown = true;
            if (this.once && backoff.failures >= 8) throw new Error(`database unavailable: ${describe(err)}`, { cause: err });
            await sleep(backoff.next(), this.stopController.signal);
            continue;
          }
          if (claimed === free) continue; // a full batch: more may be due
        }
        if (this.once && claimed === 0 && this.inFlight.size === 0 && this.finishing.size === 0) {
          this.endReason ??= claimWindowOpen ? 'drained' : 'budget';
          break;
        }
        await this.waitForWake(
          !this.once ? this.pollIntervalMs
            : claimWindowOpen && this.claimUntil !== undefined ? Math.max(1, Math.min(60_000, this.claimUntil - Date.now()))
              : 60_000,
        );
      }
    } finally {
      clearTimeout(budgetTimer);
      // also after a fatal error: no new claims, and the notification connection ends so that run() returns
      this.stopping = true;
      this.stopController.abort();
      this.wake();
      void this.listener?.end().catch(() => undefined);
      await this.shutdown();
      await listening;
      if (this.ownsPool) await this.pool.end().catch(() => undefined);
    }
    this.say(
      `stopped (claimed=${this.stats.claimed} completed=${this.stats.completed} retried=${this.stats.retried} ` +
        `failed=${this.stats.failed} released=${this.stats.released} lost=${this.stats.lost})`,
    );
    return this.stats;
  }

  private say(line: string, fields?: Fields, level?: Level): void {
    this.log(`worker ${this.workerId}: ${line}`, fields, level);
  }

  private wake(): void {
    if (this.wakeWaiter) this.wakeWaiter();
    else this.wakeFlag = true;
  }

  private waitForWake(ms: number): Promise<void> {
    if (this.wakeFlag || this.stopping) {
      this.wakeFlag = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const finish = (): void => {
        clearTimeout(timer);
        this.wakeWaiter = undefined;
        this.wakeFlag = false;
        resolve();
      };
      const timer = setTimeout(finish, ms);
      this.wakeWaiter = finish;
    });
  }

  /**
   * Sends a notification to itself through the pool and waits for it on the listener: behind a transaction-mode
   * pooler the LISTEN is accepted but nothing ever arrives (the session that listened is another client's now).
   */
  private async probe(): Promise<boolean> {
    const nonce = randomUUID();
    const arrived = new Promise<void>((resolve) => (this.probeWaiter = { nonce, resolve }));
    try {
      await this.pool.query('SELECT pg_catalog.pg_notify($1, $2)', [
        UPLOAD_QUEUE_CHANNEL,
        JSON.stringify({ event: 'probe', worker: this.workerId, nonce }),
      ]);
    } catch {
      this.probeWaiter = undefined;
      return true; // the database is unreachable: not a verdict on notifications (the claim loop reports it)
    }
    const timedOut = sleep(PROBE_TIMEOUT_MS, this.stopController.signal).then(() => false, () => true);
    const ok = await Promise.race([arrived.then(() => true), timedOut]);
    this.probeWaiter = undefined;
    return ok || this.stopping; // a probe cut short by stop() proves nothing
  }

  /**
   * Keeps one LISTEN connection open, reconnecting with backoff; every notification wakes the claim loop. When
   * notifications do not arrive (a transaction-mode pooler), it says so once and the worker polls.
   */
  private async listen(): Promise<void> {
    const backoff = new Backoff(250, 15_000);
    let everListened = false;
    let failing = false;
    while (!this.stopping) {
      let client: pg.Client | undefined;
      try {
        client = await connect(this.databaseUrl!, {
          applicationName: `neotoma-ops listener ${this.workerId}`.slice(0, 63),
          connectTimeoutMs: 5000,
        });
        const c = client;
        let ended = false;
        const endedPromise = new Promise<void>((resolve) => {
          const done = (): void => {
            ended = true;
            resolve();
          };
          c.once('end', done);
          c.once('error', done);
        });
        c.on('notification', (n) => {
          const w = this.probeWaiter;
          if (w && n.payload?.includes(w.nonce)) w.resolve();
          this.wake();
        });
        await c.query(`LISTEN ${UPLOAD_QUEUE_CHANNEL}`);
        this.listener = c;
        if (!(await this.probe())) {
          this.notifications = { state: 'polling', since: Date.now() };
          this.say(
            `notifications do not arrive on this connection (a transaction-mode pooler keeps no LISTEN); ` +
              `polling every ${this.pollIntervalMs} ms instead. Use a direct or session-mode connection for lower latency.`,
            { poll_interval_ms: this.pollIntervalMs },
            'warn',
          );
          this.listener = undefined;
          await c.end().catch(() => undefined);
          return;
        }
        if (!this.stopping) {
          this.notifications = { state: 'listening', since: Date.now() };
          this.say(everListened ? `listening on ${UPLOAD_QUEUE_CHANNEL} again` : `listening on ${UPLOAD_QUEUE_CHANNEL}`);
          everListened = true;
          failing = false;
          backoff.reset();
          this.wake(); // work may have become due while not listening
          // a probe now and then: a connection that silently stopped delivering is replaced
          while (!this.stopping && !ended) {
            await Promise.race([endedPromise, sleep(PROBE_EVERY_MS, this.stopController.signal).catch(() => undefined)]);
            if (this.stopping || ended) break;
            if (!(await this.probe())) {
              this.say('notifications stopped arriving; reconnecting the listener', undefined, 'warn');
              break;
            }
          }
        }
      } catch (err) {
        if (!failing) this.say(`listener: ${describe(err)}; reconnecting with backoff`, { error: describe(err) }, 'warn');
        failing = true;
      }
      this.listener = undefined;
      await client?.end().catch(() => undefined);
      if (!this.stopping) {
        if (this.notifications.state !== 'reconnecting') this.notifications = { state: 'reconnecting', since: Date.now() };
        await sleep(backoff.next(), this.stopController.signal).catch(() => undefined);
      }
    }
  }

  /**
   * Claims up to `free` jobs. A claim of one job costs mostly its call, so the completions waiting to be sent go
   * along in it (one round trip and one commit for both); a larger claim runs beside a completion call of its own,
   * so that two database sessions work at once (docs/benchmarks.md, "What one job costs"). A failed call rejects
   * the completions it carried, and each is retried by the upload that waits for it.
   */
  private async claim(free: number): Promise<ClaimedJob[]> {
    const finished = free === 1 ? this.completions.take() : [];
    if (finished.length === 0) return queue.claim(this.pool, this.workerId, free, this.leaseSeconds);
    try {
      const { completed, jobs } = await queue.completeAndClaim(this.pool, finished, this.workerId, free, this.leaseSeconds);
      this.completions.settle(finished, { completed });
      return jobs;
    } catch (err) {
      this.completions.settle(finished, { error: err });
      throw err;
    }
  }

  private launch(job: ClaimedJob): void {
    const controller = new AbortController();
    const entry: InFlight = { controller, done: Promise.resolve() };
    this.inFlight.set(job.job_id, entry);
    // by entry, not only by id: this worker may claim the same job again once an old lease has passed
    const holdsSlot = (): boolean => this.inFlight.get(job.job_id) === entry;
    const releaseSlot = (): void => {
      if (!holdsSlot()) return;
      this.inFlight.delete(job.job_id);
      this.finishing.add(entry);
      this.wake();
    };
    entry.done = this.process(job, controller, releaseSlot)
      .catch((err: unknown) => this.say(`job ${job.job_id}: ${describe(err)}`))
      .finally(() => {
        if (holdsSlot()) this.inFlight.delete(job.job_id);
        this.finishing.delete(entry);
        this.wake();
      });
  }

  /**
   * Runs a queue call until the database answers it (for at least 10 s or a lease, never past the budget), so a
   * short outage does not turn a finished upload into a retry. A stale token is an answer (false/null), not an
   * error; the calls are fenced by it, so repeating one is harmless.
   */
  private async report<T>(what: string, call: () => Promise<T>): Promise<T> {
    const deadline = Math.min(Date.now() + Math.max(10_000, this.leaseSeconds * 1000), this.deadline ?? Infinity);
    try {
      return (await untilAnswered(call, deadline)).value;
    } catch (err) {
      if (isFinalDatabaseAnswer(err)) throw err;
      throw new Error(`${what}: database unavailable: ${describe(err)}`, { cause: err });
    }
  }

  /** The fields of an upload's log line: job, attempt (1 = the first retry), bytes, where, how long. */
  private fields(job: ClaimedJob, startedAt: number): Fields {
    return {
      job_id: job.job_id,
      attempt: job.retry_count + 1,
      bytes: Number(job.byte_size),
      bucket: job.bucket,
      key: job.storage_path,
      duration_ms: Math.round(performance.now() - startedAt),
    };
  }

  private count(outcome: UploadOutcome, startedAt: number, error?: StorageError): void {
    const key = ({ stored: 'completed', retryable: 'retried', permanent: 'failed', released: 'released', lost: 'lost' } as const)[outcome];
    this.stats[key]++;
    try {
      this.onOutcome?.(outcome, (performance.now() - startedAt) / 1000, error);
    } catch {
      // metrics must never break the worker
    }
  }

  private async process(job: ClaimedJob, controller: AbortController, releaseSlot: () => void): Promise<void> {
    const startedAt = performance.now();
    const id = job.job_id;
    const token = job.lease_token;
    let extending = false;
    const extender = setInterval(
      () => {
        if (extending) return;
        extending = true;
        queue
          .extend(this.pool, id, token, this.leaseSeconds)
          .then((until) => {
            if (until === null && !controller.signal.aborted) controller.abort(new LeaseLost());
          })
          .catch(() => undefined) // database unreachable: the next tick tries again
          .finally(() => {
            extending = false;
          });
      },
      Math.max(100, (this.leaseSeconds * 1000) / 3),
    );
    const timeout = AbortSignal.timeout(this.uploadTimeoutMs);
    try {
      let uploadError: StorageError | undefined;
      try {
        const size = Number(job.byte_size);
        const inline = job.content;
        job.content = null; // held only by `content` below, for as long as the upload needs it
        const content = inline ?? await this.report('upload_job_content', () =>
          size > SLICE_BYTES
            ? queue.contentInSlices(this.pool, id, token, size, SLICE_BYTES)
            : queue.content(this.pool, id, token),
        );
        if (content === null) throw new LeaseLost();
        controller.signal.throwIfAborted();
        const actual = createHash('sha256').update(content).digest('hex');
        if (actual !== job.content_hash) {
          throw new StorageError(`queued bytes hash to ${actual}, expected ${job.content_hash}`, { retryable: false });
        }
        await this.storage.put({
          bucket: job.bucket,
          key: job.storage_path,
          body: content,
          contentType: job.mime_type,
          contentHash: job.content_hash,
          signal: AbortSignal.any([controller.signal, timeout]),
        });
      } catch (err) {
        const reason: unknown = controller.signal.aborted ? controller.signal.reason : err;
        if (reason instanceof LeaseLost) {
          this.count('lost', startedAt);
          this.say(`job ${id}: lease lost; another worker owns it now`, this.fields(job, startedAt), 'warn');
          return;
        }
        if (reason instanceof ShuttingDown) {
          const ok = await this.report('fail_upload_job', () =>
            queue.fail(this.pool, id, token, 'worker shut down before the upload finished', true),
          );
          this.count(ok ? 'released' : 'lost', startedAt);
          this.say(`job ${id}: released to the queue at shutdown`, this.fields(job, startedAt), 'warn');
          return;
        }
        uploadError = timeout.aborted
          ? new StorageError(`${this.storage.backend}: upload timed out after ${this.uploadTimeoutMs} ms`, { retryable: true })
          : toStorageError(err, this.storage.backend, 'upload');
      }

      if (uploadError) {
        const retryable = uploadError.retryable;
        const ok = await this.report('fail_upload_job', () => queue.fail(this.pool, id, token, uploadError.message, retryable));
        this.count(!ok ? 'lost' : retryable ? 'retryable' : 'permanent', startedAt, uploadError);
        this.say(`job ${id}: ${retryable ? 'retryable' : 'permanent'} failure: ${uploadError.message}`,
          { ...this.fields(job, startedAt), retryable, status: uploadError.status, code: uploadError.code, error: uploadError.message },
          retryable ? 'warn' : 'error');
        if (uploadError.systemic) this.blockStorage(uploadError, job.bucket);
        return;
      }
      releaseSlot(); // stored: the lease stays fenced and extended until the completion is recorded
      const ok = await this.report('complete_upload_jobs', () => this.completions.complete(id, token, job.storage_path));
      this.count(ok ? 'stored' : 'lost', startedAt);
      if (ok) this.say(`job ${id}: stored`, this.fields(job, startedAt));
      else this.say(`job ${id}: stored, but the lease had passed to another worker; it will store the same object`, this.fields(job, startedAt), 'warn');
    } finally {
      clearInterval(extender);
    }
  }

  /** Grace period for in-flight uploads, then the rest are failed back to the queue as retryable. */
  private async shutdown(): Promise<void> {
    this.stopping = true;
    this.stopController.abort();
    if (this.inFlight.size === 0 && this.finishing.size === 0) return;
    const pending = (): Promise<unknown> =>
      Promise.allSettled([...this.inFlight.values(), ...this.finishing].map((f) => f.done));
    this.say(
      `waiting up to ${this.shutdownGraceMs} ms for ${this.inFlight.size} upload(s) in flight ` +
        `and ${this.finishing.size} completion(s) being recorded`,
    );
    let graceOver = false;
    const cancelTimer = new AbortController();
    const timer = sleep(this.shutdownGraceMs, cancelTimer.signal).then(() => {
      graceOver = !cancelTimer.signal.aborted;
    });
    await Promise.race([pending(), timer]);
    cancelTimer.abort();
    if (graceOver && this.inFlight.size > 0) {
      this.say(`grace period over: failing ${this.inFlight.size} upload(s) back to the queue`);
      for (const f of this.inFlight.values()) f.controller.abort(new ShuttingDown());
    }
    await pending();
  }
}
