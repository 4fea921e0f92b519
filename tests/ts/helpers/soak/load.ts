import { randomBytes, randomUUID } from 'node:crypto';
import type pg from 'pg';
import { errorCode } from '../../../../src/db/errors.js';
import { InterpretationRunInactiveError, withHeartbeat } from '../../../../src/heartbeat.js';
import { ingestSource } from '../../../../src/ingest.js';
import type { StorageAdapter } from '../../../../src/storage/types.js';
import { RUN_TIMEOUT_SECONDS, sleep } from './config.js';
import { isConnectionError, type SoakContext } from './context.js';

export interface UserPlan {
  id: string;
  kind: 'tight-storage' | 'small-files' | 'few-runs' | 'roomy';
  contents: Buffer[];
  sources: string[];
}

/**
 * The users, on small plans: a quarter with 64 KiB of storage, a quarter with a 16 KiB file limit,
 * some with 3 interpretations a month, the rest with 4 MiB.
 */
export async function createUsers(pool: pg.Pool, nUsers: number): Promise<UserPlan[]> {
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
  return users;
}

export interface Load {
  /** Stops offering files and starting runs (calls in flight go on). */
  stop(): void;
  /** Settles once every call in flight has ended. */
  settled(): Promise<unknown>;
}

/**
 * The load: a producer ingesting files at a steady rate through `storage`, and interpretation runs, heartbeated
 * or abandoned, on the sources it created.
 */
export function startLoad(
  ctx: SoakContext,
  users: UserPlan[],
  storage: StorageAdapter,
  rates: { filesPerSecond: number; runsPerSecond: number },
): Load {
  const { f, pool } = ctx;
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
      const r = await ctx.retryingOutage('ingest', () =>
        ingestSource(pool, { userId: u.id, content, mimeType: 'application/octet-stream', filename: 'soak.bin' }, { storage, uploadTimeoutMs: 1000 }),
      );
      if (r.status === 'uploaded') f.uploaded++;
      else if (r.status === 'pending_retry') f.queued++;
      else f.duplicates++;
      if (r.status !== 'duplicate') {
        u.contents.push(content);
        u.sources.push(r.sourceId);
      }
    } catch (err) {
      const code = errorCode(err);
      if (code === 'PT402') f.quotaStorage++;
      else if (code === 'PT413') f.quotaFileSize++;
      else ctx.unexpectedError('ingest', err);
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
  }, 1000 / rates.filesPerSecond);

  // Interpretation runs: 80 % heartbeated by withHeartbeat (work lasts up to longer than the timeout),
  // 20 % abandoned (left pending, or started and never heartbeated) for the sweep to time out.
  const runOne = async (): Promise<void> => {
    const withSources = users.filter((u) => u.sources.length > 0);
    if (withSources.length === 0) return;
    const u = withSources[Math.floor(Math.random() * withSources.length)]!;
    const sourceId = u.sources[Math.floor(Math.random() * u.sources.length)]!;
    let runId: string;
    try {
      const { rows } = await ctx.retryingOutage('insert run', () =>
        pool.query<{ id: string }>(
          `INSERT INTO public.interpretation_runs (user_id, source_id, interpretation_config, status)
           VALUES ($1, $2, '{"soak":true}', 'pending') RETURNING id`,
          [u.id, sourceId],
        ),
      );
      runId = rows[0]!.id;
    } catch (err) {
      if (errorCode(err) === 'PT402') f.quotaRuns++;
      else ctx.unexpectedError('insert run', err);
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
      await ctx.retryingOutage('start run', () => pool.query('SELECT public.start_interpretation_run($1)', [runId])).catch((err) =>
        ctx.unexpectedError('start run', err),
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
      const overlapped = ctx.restartWindows.some(([a, b]) => began <= b + 2000 && Date.now() >= a) || ctx.restarting;
      if (err instanceof InterpretationRunInactiveError && overlapped) f.runsStoppedBySweep++;
      else if (isConnectionError(err) && overlapped) f.runsInterrupted++;
      else ctx.unexpectedError(`heartbeated run ${runId}`, err);
    }
  };
  const runner = setInterval(() => {
    if (producing) track(runOne());
  }, 1000 / rates.runsPerSecond);

  return {
    stop() {
      producing = false;
      clearInterval(producer);
      clearInterval(runner);
    },
    settled: () => Promise.allSettled([...inFlight]),
  };
}
