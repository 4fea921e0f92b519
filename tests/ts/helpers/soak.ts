/**
 * The soak: a cluster of its own, 4 upload worker processes on fault-injecting storage, a producer ingesting
 * files for 100 users on small plans at a steady rate, interpretation runs (heartbeated or abandoned), worker
 * SIGKILLs at random intervals, one PostgreSQL restart, and the pg_cron functions called on a fast timer.
 * At the end the storage is healed, the queue drains and the invariants are checked. Used by
 * tests/ts/soak.test.ts (20 s) and `npm run soak` (tests/soak/, 2 minutes by default).
 *
 * Simulated or compressed (see docs/reliability.md, "Soak"): the scheduler (process_upload_queue() and
 * cleanup_stale_interpretations() called every tick instead of every 5 minutes by pg_cron) and the retry clock
 * (each tick backdates next_retry_at of pending jobs, so the 30 s .. 480 s backoff passes in one tick).
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { InterpretationRunInactiveError, withHeartbeat } from '../../../src/heartbeat.js';
import { ingestSource } from '../../../src/ingest.js';
import { FaultyStorage, PartialWriteFsStorage, type FaultSettings } from '../../../src/storage/faulty.js';
import { migratedCluster, spawnWorker, workerSummary, type WorkerProcess } from './upload.js';

export interface SoakOptions {
  seconds: number;
  workers?: number;
  users?: number;
  /** Files offered per second by the producer. */
  filesPerSecond?: number;
  /** Interpretation runs started per second. */
  runsPerSecond?: number;
  /** Driver tick (backdating, process_upload_queue, cleanup_stale_interpretations, samples). */
  tickMs?: number;
  log?: (line: string) => void;
}

export interface Invariant {
  name: string;
  held: boolean;
  detail: string;
}

export interface SoakReport {
  seconds: number;
  wallSeconds: number;
  figures: Record<string, number | string>;
  faults: Record<string, number>;
  invariants: Invariant[];
  unexpectedErrors: string[];
}

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

const RUN_TIMEOUT_SECONDS = 5;
const LEASE_SECONDS = 3;

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Errors that mean "the database is not reachable right now" (restart), not an answer of the database. */
function isConnectionError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : '';
  const msg = typeof e?.message === 'string' ? e.message : String(err);
  return (
    /^(08|57P0)/.test(code) ||
    ['ECONNREFUSED', 'ECONNRESET', 'EPIPE'].includes(code) ||
    /Connection terminated|connection (is )?closed|Client has encountered a connection error|not queryable|the database system is (shutting down|starting up)|terminating connection/i.test(msg)
  );
}
const sqlState = (err: unknown): string | undefined => {
  const c = (err as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : undefined;
};

interface UserPlan {
  id: string;
  kind: 'tight-storage' | 'small-files' | 'few-runs' | 'roomy';
  contents: Buffer[];
  sources: string[];
}

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
  const fsRoot = path.join(work, 'storage');
  const controlFile = path.join(work, 'faults-control.json');
  const logFile = path.join(work, 'writes.log');
  const db = await migratedCluster();
  const pool = new pg.Pool({ connectionString: db.url, max: 40, connectionTimeoutMillis: 5000 });
  pool.on('error', () => undefined); // idle clients dropped by the restart: the next query reconnects

  const unexpected: string[] = [];
  const f = {
    offered: 0,
    backpressure: 0,
    uploaded: 0,
    queued: 0,
    duplicates: 0,
    quotaStorage: 0,
    quotaFileSize: 0,
    quotaRuns: 0,
    dbUnavailableRetries: 0,
    runsStarted: 0,
    runsCompleted: 0,
    runsAbandoned: 0,
    runsStoppedBySweep: 0,
    runsInterrupted: 0,
    heartbeatErrors: 0,
    kills: 0,
    dbRestarts: 0,
    ticks: 0,
    ticksSkipped: 0,
    backdated: 0,
    rescued: 0,
    sweptRuns: 0,
    samples: 0,
    usageDriftSamples: 0,
    overLimitSamples: 0,
    maxOverdueSeconds: 0,
  };
  const restartWindows: Array<[number, number]> = [];
  let restarting = false;
  /** A connection error is expected only while (or just after) the database restarts. */
  const expectedOutage = (at: number): boolean => restarting || restartWindows.some(([a, b]) => at >= a - 500 && at <= b + 10_000);
  const unexpectedError = (where: string, err: unknown): void => {
    if (unexpected.length < 50) unexpected.push(`${where}: ${sqlState(err) ?? ''} ${(err as Error)?.message ?? String(err)}`);
  };

  /** Runs `op`, retrying while the database is restarting; other errors are thrown. */
  async function retryingOutage<T>(where: string, op: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        return await op();
      } catch (err) {
        if (!isConnectionError(err) || Date.now() > deadline) throw err;
        if (!expectedOutage(Date.now())) unexpectedError(`${where} (connection error outside the restart)`, err);
        f.dbUnavailableRetries++;
        await sleep(250);
      }
    }
  }

  const workers: Array<WorkerProcess | undefined> = [];
  let workerGen = 0;
  const stoppers: Array<() => void> = [];
  try {
    await pool.query(`UPDATE neotoma_ops.interpretation_settings SET run_timeout = $1::interval, updated_at = now()`, [
      `${RUN_TIMEOUT_SECONDS} seconds`,
    ]);

    // 100 users on small plans: a quarter with 64 KiB of storage, a quarter with a 16 KiB file limit,
    // some with 3 interpretations a month, the rest with 4 MiB.
    const users: UserPlan[] = [];
    for (let i = 0; i < nUsers; i++) {
      const kind = (['tight-storage', 'small-files', 'few-runs', 'roomy'] as const)[i % 4]!;
      const u: UserPlan = { id: randomUUID(), kind, contents: [], sources: [] };
      users.push(u);
      await pool.query(`SELECT public.set_user_plan($1, 'free')`, [u.id]);
      await pool.query(
        `UPDATE public.storage_usage SET storage_limit_bytes_override = $2, max_file_bytes_override = $3,
                interpretation_limit_month_override = $4 WHERE user_id = $1`,
        [u.id, kind === 'tight-storage' ? 64 * 1024 : 4 << 20, kind === 'small-files' ? 16 * 1024 : null, kind === 'few-runs' ? 3 : null],
      );
    }

    const workerEnv = {
      DATABASE_URL: db.url,
      STORAGE_BACKEND: 'faulty',
      STORAGE_FS_ROOT: fsRoot,
      STORAGE_FAULTS: JSON.stringify({ inner: 'fs', ...SOAK_FAULTS, controlFile, logFile }),
      WORKER_LEASE_SECONDS: String(LEASE_SECONDS),
      WORKER_POLL_INTERVAL_MS: '250',
      WORKER_CONCURRENCY: '4',
      UPLOAD_TIMEOUT_MS: '1500',
      SHUTDOWN_GRACE_MS: '2000',
    };
    const startWorker = (slot: number): WorkerProcess => {
      const w = spawnWorker(['--worker-id', `soak-w${slot}-${workerGen++}`], workerEnv);
      workers[slot] = w;
      return w;
    };
    await Promise.all(Array.from({ length: nWorkers }, (_, i) => startWorker(i).line(/listening on upload_queue/, 20_000)));

    const producerStorage = new FaultyStorage({
      inner: new PartialWriteFsStorage({ root: fsRoot }),
      ...SOAK_FAULTS,
      controlFile,
      logFile,
    });

    let producing = true;
    const inFlight = new Set<Promise<void>>();
    const track = (p: Promise<void>): void => {
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    };

    // Producer: a steady rate of files, some re-sent (deduplicated); an offer is skipped (counted) when 64 calls are in flight.
    const ingestOne = async (u: UserPlan): Promise<void> => {
      const resend = u.contents.length > 0 && Math.random() < 0.07;
      const content = resend
        ? u.contents[Math.floor(Math.random() * u.contents.length)]!
        : Buffer.concat([Buffer.from(`${u.id} ${randomUUID()}\n`), randomBytes(1024 + Math.floor(Math.random() * 23 * 1024))]);
      try {
        const r = await retryingOutage('ingest', () =>
          ingestSource(pool, { userId: u.id, content, mimeType: 'application/octet-stream', filename: 'soak.bin' }, { storage: producerStorage, uploadTimeoutMs: 1000 }),
        );
        if (r.status === 'uploaded') f.uploaded++;
        else if (r.status === 'pending_retry') f.queued++;
        else f.duplicates++;
        if (r.status !== 'duplicate') {
          u.contents.push(content);
          u.sources.push(r.sourceId);
        }
      } catch (err) {
        const code = sqlState(err);
        if (code === 'PT402') f.quotaStorage++;
        else if (code === 'PT413') f.quotaFileSize++;
        else unexpectedError('ingest', err);
      }
    };
    const producer = setInterval(() => {
      if (!producing) return;
      f.offered++;
      if (inFlight.size >= 64) {
        f.backpressure++;
        return;
      }
      track(ingestOne(users[Math.floor(Math.random() * users.length)]!));
    }, 1000 / filesPerSecond);
    stoppers.push(() => clearInterval(producer));

    // Interpretation runs: 80 % heartbeated by withHeartbeat (work lasts up to longer than the timeout),
    // 20 % abandoned (left pending, or started and never heartbeated) for the sweep to time out.
    const runOne = async (): Promise<void> => {
      const withSources = users.filter((u) => u.sources.length > 0);
      if (withSources.length === 0) return;
      const u = withSources[Math.floor(Math.random() * withSources.length)]!;
      const sourceId = u.sources[Math.floor(Math.random() * u.sources.length)]!;
      let runId: string;
      try {
        const { rows } = await retryingOutage('insert run', () =>
          pool.query<{ id: string }>(
            `INSERT INTO public.interpretation_runs (user_id, source_id, interpretation_config, status)
             VALUES ($1, $2, '{"soak":true}', 'pending') RETURNING id`,
            [u.id, sourceId],
          ),
        );
        runId = rows[0]!.id;
      } catch (err) {
        if (sqlState(err) === 'PT402') f.quotaRuns++;
        else unexpectedError('insert run', err);
        return;
      }
      f.runsStarted++;
      const roll = Math.random();
      if (roll < 0.1) {
        f.runsAbandoned++; // never picked up
        return;
      }
      if (roll < 0.2) {
        f.runsAbandoned++; // started, then the worker went silent
        await retryingOutage('start run', () => pool.query('SELECT public.start_interpretation_run($1)', [runId])).catch((err) =>
          unexpectedError('start run', err),
        );
        return;
      }
      const duration = 300 + Math.random() * (RUN_TIMEOUT_SECONDS * 1000 * 1.4);
      const began = Date.now();
      try {
        await withHeartbeat(pool, runId, (signal) => sleep(duration).then(() => signal.throwIfAborted()), {
          onHeartbeatError: () => f.heartbeatErrors++,
        });
        f.runsCompleted++;
      } catch (err) {
        const overlapped = restartWindows.some(([a, b]) => began <= b + 2000 && Date.now() >= a) || restarting;
        if (err instanceof InterpretationRunInactiveError && overlapped) f.runsStoppedBySweep++;
        else if (isConnectionError(err) && overlapped) f.runsInterrupted++;
        else unexpectedError(`heartbeated run ${runId}`, err);
      }
    };
    const runner = setInterval(() => {
      if (producing) track(runOne());
    }, 1000 / runsPerSecond);
    stoppers.push(() => clearInterval(runner));

    // The driver's tick: the test's clock and scheduler, plus the sampled invariants.
    let ticking = true;
    const tick = async (): Promise<void> => {
      f.ticks++;
      try {
        const b = await pool.query(`UPDATE public.upload_queue SET next_retry_at = now() WHERE status = 'pending' AND next_retry_at > now()`);
        f.backdated += b.rowCount ?? 0;
        const p = await pool.query<{ r: { rescued?: number } }>('SELECT public.process_upload_queue() AS r');
        f.rescued += p.rows[0]!.r.rescued ?? 0;
        const s = await pool.query<{ n: number }>('SELECT public.cleanup_stale_interpretations() AS n');
        f.sweptRuns += s.rows[0]!.n;
        const usage = await pool.query<{ drift: number; over: number }>(
          `SELECT count(*) FILTER (WHERE u.total_bytes <> coalesce(s.bytes, 0) OR u.total_sources <> coalesce(s.n, 0))::int AS drift,
                  count(*) FILTER (WHERE u.total_bytes > coalesce(u.storage_limit_bytes_override, p.storage_limit_bytes)
                                      OR u.interpretation_count_month > coalesce(u.interpretation_limit_month_override, p.interpretation_limit_month))::int AS over
             FROM public.storage_usage AS u
             JOIN public.plans AS p ON p.id = u.plan_id
             LEFT JOIN (SELECT user_id, sum(file_size) AS bytes, count(*) AS n FROM public.sources GROUP BY user_id) AS s
               ON s.user_id = u.user_id`,
        );
        const runs = await pool.query<{ overdue: number | null }>(
          `SELECT max(extract(epoch FROM now() - timeout_at))::float8 AS overdue
             FROM public.interpretation_runs WHERE status IN ('pending', 'running') AND timeout_at < now()`,
        );
        f.samples++;
        if (usage.rows[0]!.drift > 0) f.usageDriftSamples++;
        if (usage.rows[0]!.over > 0) f.overLimitSamples++;
        f.maxOverdueSeconds = Math.max(f.maxOverdueSeconds, runs.rows[0]!.overdue ?? 0);
      } catch (err) {
        f.ticksSkipped++;
        if (!isConnectionError(err) || !expectedOutage(Date.now())) unexpectedError('driver tick', err);
      }
    };
    const ticker = (async () => {
      while (ticking) {
        const started = Date.now();
        await tick();
        await sleep(Math.max(0, tickMs - (Date.now() - started)));
      }
    })();
    stoppers.push(() => (ticking = false));

    // Chaos: SIGKILL a random worker every 2-6 s (restarted 0.3-1.5 s later); one database restart at 40 %.
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
        const busySlots = workers.flatMap((w, i) => (w && busy.some((id) => w.output.some((l) => l.startsWith(`worker ${id}:`))) ? [i] : []));
        const slot = busySlots.length > 0 ? busySlots[Math.floor(Math.random() * busySlots.length)]! : Math.floor(Math.random() * nWorkers);
        const w = workers[slot];
        if (!w) continue;
        w.child.kill('SIGKILL');
        await w.exited;
        f.kills++;
        await sleep(300 + Math.random() * 1200);
        startWorker(slot);
      }
    })();
    const restarter = (async () => {
      await sleep(seconds * 400);
      if (!chaos) return;
      restarting = true;
      const a = Date.now();
      log(`soak: restarting PostgreSQL at ${((a - t0) / 1000).toFixed(1)} s`);
      await db.cluster.stop();
      await sleep(500);
      const url = await db.cluster.start();
      if (url !== db.url) unexpected.push(`the database came back on another URL: ${url}`);
      restartWindows.push([a, Date.now()]);
      restarting = false;
      f.dbRestarts++;
    })();

    const progress = setInterval(() => {
      log(
        `soak: ${((Date.now() - t0) / 1000).toFixed(0)} s: offered ${f.offered}, uploaded ${f.uploaded}, queued ${f.queued}, ` +
          `quota ${f.quotaStorage + f.quotaFileSize + f.quotaRuns}, runs ${f.runsStarted}, kills ${f.kills}, restarts ${f.dbRestarts}`,
      );
    }, 10_000);
    stoppers.push(() => clearInterval(progress));

    await sleep(seconds * 1000);

    // Stop producing, end the chaos, heal the storage, bring every worker back, and drain.
    producing = false;
    chaos = false;
    const drainStart = Date.now();
    clearInterval(producer);
    clearInterval(runner);
    await restarter;
    await killer;
    await Promise.allSettled([...inFlight]);
    await writeFile(controlFile, JSON.stringify({ enabled: false }));
    for (let i = 0; i < nWorkers; i++) if (workers[i]!.child.exitCode !== null || workers[i]!.child.signalCode !== null) startWorker(i);
    const active = async (): Promise<{ jobs: number; runs: number }> => {
      const { rows } = await pool.query<{ jobs: number; runs: number }>(
        `SELECT (SELECT count(*) FROM public.upload_queue WHERE status IN ('pending', 'in_progress'))::int AS jobs,
                (SELECT count(*) FROM public.interpretation_runs WHERE status IN ('pending', 'running'))::int AS runs`,
      );
      return rows[0]!;
    };
    for (;;) {
      const a = await retryingOutage('drain', active);
      if (a.jobs === 0 && a.runs === 0) break;
      if (Date.now() - drainStart > 60_000) {
        unexpected.push(`drain: ${a.jobs} jobs and ${a.runs} runs still active after 60 s`);
        break;
      }
      await sleep(250);
    }
    const drainSeconds = (Date.now() - drainStart) / 1000;
    ticking = false;
    clearInterval(progress);
    await ticker;

    // Graceful stop of the workers: each must exit 0 with its summary line.
    const live = workers.filter((w): w is WorkerProcess => w !== undefined);
    await Promise.all(live.map((w) => w.line(/listening on upload_queue/, 20_000).catch(() => undefined)));
    for (const w of live) w.child.kill('SIGTERM');
    const exits = await Promise.all(live.map((w) => w.exited));
    const badExits = exits.filter((e) => e.code !== 0).length;
    const summaries = live.map((w) => {
      try {
        return workerSummary(w.output);
      } catch {
        return undefined;
      }
    });

    // ---- invariants ----
    const invariants: Invariant[] = [];
    const check = (name: string, held: boolean, detail: string): void => {
      invariants.push({ name, held, detail });
    };
    const q = async <R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> => (await pool.query<R>(sql, params)).rows;

    const [jobs] = await q<{
      total: number;
      completed: number;
      failed: number;
      failed_exhausted: number;
      failed_permanent: number;
      other: number;
      bad_completed: number;
      bad_failed: number;
      sum_retries: number;
      sources: number;
    }>(
      `SELECT count(*)::int AS total,
              count(*) FILTER (WHERE status = 'completed')::int AS completed,
              count(*) FILTER (WHERE status = 'failed')::int AS failed,
              count(*) FILTER (WHERE status = 'failed' AND retry_count = max_retries)::int AS failed_exhausted,
              count(*) FILTER (WHERE status = 'failed' AND retry_count < max_retries AND error_message LIKE '%HTTP 4%')::int AS failed_permanent,
              count(*) FILTER (WHERE status NOT IN ('completed', 'failed'))::int AS other,
              count(*) FILTER (WHERE status = 'completed' AND retry_count >= max_retries)::int AS bad_completed,
              count(*) FILTER (WHERE status = 'failed' AND NOT (retry_count = max_retries
                                 OR (retry_count < max_retries AND error_message LIKE '%HTTP 4%')))::int AS bad_failed,
              coalesce(sum(retry_count), 0)::int AS sum_retries,
              count(DISTINCT source_id)::int AS sources
         FROM public.upload_queue`,
    );
    const counters = Object.fromEntries(
      (await q<{ counter: string; value: string }>('SELECT counter, value FROM neotoma_ops.upload_queue_counter_totals()')).map((r) => [r.counter, Number(r.value)]),
    );
    check(
      'every enqueued job is completed or failed',
      jobs!.total > 0 && jobs!.other === 0,
      `${jobs!.total} jobs: ${jobs!.completed} completed, ${jobs!.failed} failed, ${jobs!.other} other`,
    );
    check(
      'failed jobs after exactly their allowed attempts (retry_count = max_retries, or a non-retryable error)',
      jobs!.bad_failed === 0 && jobs!.bad_completed === 0,
      `${jobs!.failed_exhausted} exhausted, ${jobs!.failed_permanent} non-retryable, ${jobs!.bad_failed} otherwise; ${jobs!.bad_completed} completed after max_retries`,
    );
    check(
      'every attempt accounted for: retries started = retry failures + completions; failures = SUM(retry_count)',
      counters.upload_retries_total === counters.upload_retry_failures_total! + jobs!.completed &&
        counters.upload_retry_failures_total === jobs!.sum_retries,
      `claims ${counters.upload_retries_total}, retry failures ${counters.upload_retry_failures_total}, completions ${jobs!.completed}, SUM(retry_count) ${jobs!.sum_retries}`,
    );
    check(
      'no job completed twice (completion counter = completed jobs = distinct sources; one job per source)',
      counters.upload_completed_total === jobs!.completed && jobs!.sources === jobs!.total && counters.upload_enqueued_total === jobs!.total,
      `completed_total ${counters.upload_completed_total}, completed jobs ${jobs!.completed}, jobs ${jobs!.total}, distinct sources ${jobs!.sources}, enqueued_total ${counters.upload_enqueued_total}`,
    );

    const [status] = await q<{ mismatched: number; pending: number }>(
      `SELECT count(*) FILTER (WHERE (j.status = 'completed' AND s.storage_status <> 'uploaded')
                                  OR (j.status = 'failed' AND s.storage_status <> 'failed'))::int AS mismatched,
              (SELECT count(*) FROM public.sources WHERE storage_status = 'pending')::int AS pending
         FROM public.upload_queue AS j JOIN public.sources AS s ON s.id = j.source_id`,
    );
    check(
      'source status follows its job (completed → uploaded, failed → failed; none left pending)',
      status!.mismatched === 0 && status!.pending === 0,
      `${status!.mismatched} mismatched, ${status!.pending} pending`,
    );

    // Objects: every uploaded source is stored whole; every stored write of a completed job was logged.
    const uploaded = await q<{ storage_url: string; content_hash: string; file_size: string }>(
      `SELECT storage_url, content_hash, file_size FROM public.sources WHERE storage_status = 'uploaded'`,
    );
    let missing = 0;
    let wrong = 0;
    for (const s of uploaded) {
      const file = path.join(fsRoot, 'sources', ...s.storage_url.split('/'));
      if (!existsSync(file)) {
        missing++;
        continue;
      }
      const bytes = await readFile(file);
      if (sha256(bytes) !== s.content_hash || bytes.length !== Number(s.file_size)) wrong++;
    }
    check(
      "every uploaded source's object exists with the right bytes (sha256 = content_hash)",
      uploaded.length > 0 && missing === 0 && wrong === 0,
      `${uploaded.length} objects checked, ${missing} missing, ${wrong} wrong`,
    );
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
    const completedKeys = await q<{ key: string }>(`SELECT bucket || '/' || storage_path AS key FROM public.upload_queue WHERE status = 'completed'`);
    const unlogged = completedKeys.filter((k) => !storedWrites.has(k.key)).length;
    const rewritten = [...storedWrites.values()].filter((n) => n > 1).length;
    check(
      'every completed job was stored by a logged write',
      unlogged === 0,
      `${completedKeys.length} completed keys, ${unlogged} without a stored write; ${rewritten} keys stored more than once (harmless: content-addressed)`,
    );
    const tmpLeft = await countTmp(path.join(fsRoot, 'sources'));

    const [usage] = await q<{ drift: number; over: number; users: number }>(
      `SELECT count(*) FILTER (WHERE u.total_bytes <> coalesce(s.bytes, 0) OR u.total_sources <> coalesce(s.n, 0))::int AS drift,
              count(*) FILTER (WHERE u.total_bytes > coalesce(u.storage_limit_bytes_override, p.storage_limit_bytes))::int AS over,
              count(*)::int AS users
         FROM public.storage_usage AS u JOIN public.plans AS p ON p.id = u.plan_id
         LEFT JOIN (SELECT user_id, sum(file_size) AS bytes, count(*) AS n FROM public.sources GROUP BY user_id) AS s ON s.user_id = u.user_id`,
    );
    check(
      'per user total_bytes = SUM(file_size) and total_sources = COUNT, at the end and at every sample',
      usage!.drift === 0 && f.usageDriftSamples === 0 && f.samples > 0,
      `${usage!.users} users, ${usage!.drift} drifted at the end, ${f.usageDriftSamples} of ${f.samples} samples with drift`,
    );
    check(
      'no user over a storage or interpretation limit at any sampled moment',
      usage!.over === 0 && f.overLimitSamples === 0,
      `${f.overLimitSamples} of ${f.samples} samples over, ${usage!.over} over at the end`,
    );

    const [runs] = await q<{ timed_out: number; active: number; completed: number }>(
      `SELECT count(*) FILTER (WHERE status = 'failed' AND error_message = 'Timeout - no heartbeat')::int AS timed_out,
              count(*) FILTER (WHERE status IN ('pending', 'running'))::int AS active,
              count(*) FILTER (WHERE status = 'completed')::int AS completed
         FROM public.interpretation_runs`,
    );
    const sweepBound = tickMs / 1000 + 1.5;
    check(
      'no interpretation left pending/running past its timeout plus one sweep',
      runs!.active === 0 && f.maxOverdueSeconds <= sweepBound && runs!.timed_out >= f.runsAbandoned,
      `max overdue at a sample ${f.maxOverdueSeconds.toFixed(2)} s (bound ${sweepBound} s); ${runs!.timed_out} timed out ` +
        `(${f.runsAbandoned} abandoned on purpose), ${runs!.active} active at the end`,
    );
    const outageSeconds = restartWindows.reduce((n, [a, b]) => n + (b - a) / 1000, 0);
    const lostRuns = f.runsStoppedBySweep + f.runsInterrupted;
    check(
      'every heartbeated run completed (none lost to the restart unless the outage outlasted two heartbeats)',
      lostRuns === 0 || outageSeconds > (RUN_TIMEOUT_SECONDS * 2) / 3,
      `${f.runsCompleted} completed, ${lostRuns} lost, outage ${outageSeconds.toFixed(1)} s`,
    );
    check(
      'no error other than the expected quota errors reached the producer',
      unexpected.length === 0,
      unexpected.length === 0 ? 'none' : unexpected.slice(0, 5).join(' | '),
    );
    check(
      'every worker stopped gracefully at the end (exit 0, summary line)',
      badExits === 0 && summaries.every(Boolean),
      `${live.length} workers, ${badExits} bad exits`,
    );

    const figures: Record<string, number | string> = {
      'files offered': f.offered,
      'offers skipped (64 calls in flight)': f.backpressure,
      'stored at ingest': f.uploaded,
      'queued at ingest (upload failed)': f.queued,
      'duplicates (same content re-sent)': f.duplicates,
      'quota rejections: storage (PT402)': f.quotaStorage,
      'quota rejections: file size (PT413)': f.quotaFileSize,
      'quota rejections: interpretations (PT402)': f.quotaRuns,
      'jobs enqueued': jobs!.total,
      'jobs completed': jobs!.completed,
      'jobs failed (retries exhausted)': jobs!.failed_exhausted,
      'jobs failed (non-retryable)': jobs!.failed_permanent,
      'worker attempts (claims)': counters.upload_retries_total ?? 0,
      'failed attempts': counters.upload_retry_failures_total ?? 0,
      'expired leases rescued': counters.upload_lease_expirations_total ?? 0,
      'keys stored more than once': rewritten,
      'temporary files left by killed writers': tmpLeft,
      'interpretation runs': f.runsStarted,
      'runs completed with heartbeats': runs!.completed,
      'runs abandoned on purpose': f.runsAbandoned,
      'runs timed out by the sweep': runs!.timed_out,
      'heartbeated runs timed out during the DB restart': f.runsStoppedBySweep,
      'heartbeated runs cut off by the DB restart (then timed out)': f.runsInterrupted,
      'heartbeat errors (DB down)': f.heartbeatErrors,
      'max seconds a run stayed active past its timeout': f.maxOverdueSeconds.toFixed(2),
      'worker SIGKILLs': f.kills,
      'PostgreSQL restarts': f.dbRestarts,
      'producer retries while the DB was down': f.dbUnavailableRetries,
      'driver ticks (skipped while down)': `${f.ticks} (${f.ticksSkipped})`,
      'usage samples': f.samples,
      'DB outage during the restart (s)': outageSeconds.toFixed(1),
      'from end of load to empty queue (s)': drainSeconds.toFixed(1),
      'invariants held': `${invariants.filter((i) => i.held).length}/${invariants.length}`,
    };
    return { seconds, wallSeconds: (Date.now() - t0) / 1000, figures, faults, invariants, unexpectedErrors: unexpected };
  } finally {
    for (const s of stoppers) s();
    for (const w of workers) w?.child.kill('SIGKILL');
    await pool.end().catch(() => undefined);
    await db.destroy();
    await rm(work, { recursive: true, force: true });
  }
}

async function countTmp(dir: string): Promise<number> {
  let n = 0;
  for (const user of await readdir(dir).catch(() => [] as string[])) {
    for (const f of await readdir(path.join(dir, user)).catch(() => [] as string[])) if (f.endsWith('.tmp')) n++;
  }
  return n;
}

/** The report as printed by `npm run soak` and the soak test. */
export function formatReport(r: SoakReport): string {
  const out = [`Soak: ${r.seconds} s of load (${r.wallSeconds.toFixed(1)} s wall)`, ''];
  const width = Math.max(...Object.keys(r.figures).map((k) => k.length));
  for (const [k, v] of Object.entries(r.figures)) out.push(`  ${k.padEnd(width)}  ${v}`);
  out.push('', '  storage writes by outcome (producer + workers):');
  for (const [k, v] of Object.entries(r.faults).sort()) out.push(`    ${k.padEnd(12)} ${v}`);
  out.push('', '  invariants:');
  for (const i of r.invariants) out.push(`    [${i.held ? 'held' : 'BROKEN'}] ${i.name}: ${i.detail}`);
  return out.join('\n');
}
