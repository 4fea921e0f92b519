import type pg from 'pg';
import { errorCode } from './db/errors.js';
import { untilAnswered } from './db/retry.js';

/** Anything that runs a parameterised query: a pg.Pool, a pg.Client or a checked-out pool client. */
export interface Queryable {
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

/** What the work reports when it succeeds; recorded on the run. */
export interface InterpretationCounts {
  observationsCreated?: number;
  unknownFieldsCount?: number;
}

export interface WithHeartbeatOptions {
  /** Time between heartbeats. Default: a third of the configured run timeout (public.interpretation_run_timeout()). */
  intervalMs?: number;
  /** Called when a heartbeat fails for another reason than the run being finished (e.g. a dropped connection);
   *  heartbeating goes on, and the run times out only if heartbeats keep failing for a whole timeout. */
  onHeartbeatError?: (err: unknown) => void;
}

export interface HeartbeatRunResult {
  runId: string;
  status: 'completed';
  observationsCreated: number;
  unknownFieldsCount: number;
  /** Heartbeats recorded while the work ran. */
  heartbeats: number;
  intervalMs: number;
}

/**
 * The run is no longer pending/running (typically: cleanup_stale_interpretations() failed it after its
 * heartbeats stopped). Its row was left as the database has it; the work was aborted or its result discarded.
 */
export class InterpretationRunInactiveError extends Error {
  readonly runId: string;
  constructor(runId: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InterpretationRunInactiveError';
    this.runId = runId;
  }
}

/** How long the final calls of a run (start, complete, fail) are retried while the database gives no answer. */
const FINAL_CALL_RETRY_MS = 30_000;

/**
 * Runs one of the run's lifecycle calls until the database answers it (a restart or a failover in between), for
 * at most `FINAL_CALL_RETRY_MS` and never past the run's timeout. Every lifecycle function is guarded in SQL, so
 * running a call twice is harmless. Reports whether an attempt went unanswered (it may have run).
 */
async function lifecycleCall<R extends pg.QueryResultRow>(
  db: Queryable,
  text: string,
  values: unknown[],
  windowMs: number,
): Promise<{ result: pg.QueryResult<R>; lostAttempt: boolean }> {
  const answered = await untilAnswered(() => db.query<R>(text, values), Date.now() + Math.min(FINAL_CALL_RETRY_MS, windowMs));
  return { result: answered.value, lostAttempt: answered.unanswered };
}

/** SQLSTATEs of heartbeat/start meaning "this run is finished or gone": stop, do not retry. */
const RUN_INACTIVE_CODES = new Set(['55000', 'P0002']);

function messageOf(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.trim() === '' ? 'interpretation failed without an error message' : text;
}

function count(value: number | undefined, name: string): number {
  const n = value ?? 0;
  if (!Number.isInteger(n) || n < 0) {
    throw new RangeError(`withHeartbeat: ${name} must be a non-negative integer, got ${String(value)}`);
  }
  return n;
}

/** Default heartbeat interval for a run timeout: a third of it, so two heartbeats may be lost before a timeout. */
export function defaultHeartbeatIntervalMs(timeoutMs: number): number {
  return Math.max(100, Math.floor(timeoutMs / 3));
}

/**
 * Runs `work` as interpretation run `runId`: marks the run running (public.start_interpretation_run), calls
 * public.heartbeat_interpretation every `intervalMs` while the work runs, then marks the run completed with
 * the work's counts, or failed with the work's error message (and rethrows it).
 *
 * When a heartbeat reports that the run is no longer active (the sweep failed it), heartbeating stops, `work`
 * is aborted through its AbortSignal (reason: an InterpretationRunInactiveError), nothing is written, and the
 * returned promise rejects with that error. A completion that arrives after the sweep also changes nothing
 * (the database guards every status change) and rejects the same way.
 *
 * The start, complete and fail calls are retried while the database gives no answer (restart, failover; at
 * most 30 s and never past the run's timeout), so a short outage does not turn finished work into a timeout;
 * a completion whose answer was lost is recognised by reading the run back.
 */
export async function withHeartbeat(
  db: Queryable,
  runId: string,
  work: (signal: AbortSignal) => Promise<InterpretationCounts | void>,
  options: WithHeartbeatOptions = {},
): Promise<HeartbeatRunResult> {
  if (options.intervalMs !== undefined && !(Number.isFinite(options.intervalMs) && options.intervalMs > 0)) {
    throw new RangeError(`withHeartbeat: intervalMs must be a positive number of milliseconds, got ${options.intervalMs}`);
  }

  let timeoutMs: number;
  try {
    const { result } = await lifecycleCall<{ timeout_at: Date; timeout_ms: string }>(
      db,
      `SELECT public.start_interpretation_run($1) AS timeout_at,
              (extract(epoch FROM public.interpretation_run_timeout()) * 1000)::bigint AS timeout_ms`,
      [runId],
      FINAL_CALL_RETRY_MS,
    );
    timeoutMs = Number(result.rows[0]?.timeout_ms);
  } catch (err) {
    if (RUN_INACTIVE_CODES.has(errorCode(err) ?? '')) {
      throw new InterpretationRunInactiveError(runId, `interpretation run ${runId} cannot start: ${messageOf(err)}`, {
        cause: err,
      });
    }
    throw err;
  }
  const intervalMs = options.intervalMs ?? defaultHeartbeatIntervalMs(timeoutMs);

  const controller = new AbortController();
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let inFlight: Promise<void> | undefined;
  let heartbeats = 0;
  let inactive: InterpretationRunInactiveError | undefined;

  const beat = async (): Promise<void> => {
    try {
      await db.query('SELECT public.heartbeat_interpretation($1)', [runId]);
      heartbeats += 1;
    } catch (err) {
      if (RUN_INACTIVE_CODES.has(errorCode(err) ?? '')) {
        inactive = new InterpretationRunInactiveError(
          runId,
          `interpretation run ${runId} is no longer active; work aborted: ${messageOf(err)}`,
          { cause: err },
        );
        stopped = true;
        controller.abort(inactive);
        return;
      }
      options.onHeartbeatError?.(err);
    }
  };
  const schedule = (): void => {
    if (stopped) return;
    timer = setTimeout(() => {
      inFlight = beat().finally(() => {
        inFlight = undefined;
        schedule();
      });
    }, intervalMs);
  };
  const stop = async (): Promise<void> => {
    stopped = true;
    if (timer) clearTimeout(timer);
    await inFlight;
  };

  schedule();
  let counts: InterpretationCounts | void;
  try {
    counts = await work(controller.signal);
  } catch (err) {
    await stop();
    if (inactive) throw inactive;
    // Guarded in SQL: a run the sweep failed in the meantime keeps its timeout status.
    await lifecycleCall(db, 'SELECT public.fail_interpretation_run($1, $2)', [runId, messageOf(err)], timeoutMs);
    throw err;
  }
  await stop();
  if (inactive) throw inactive;

  let observationsCreated: number;
  let unknownFieldsCount: number;
  try {
    observationsCreated = count(counts?.observationsCreated, 'observationsCreated');
    unknownFieldsCount = count(counts?.unknownFieldsCount, 'unknownFieldsCount');
  } catch (err) {
    await lifecycleCall(db, 'SELECT public.fail_interpretation_run($1, $2)', [runId, messageOf(err)], timeoutMs);
    throw err;
  }

  const { result, lostAttempt } = await lifecycleCall<{ completed: boolean }>(
    db,
    'SELECT public.complete_interpretation_run($1, $2, $3) AS completed',
    [runId, observationsCreated, unknownFieldsCount],
    timeoutMs,
  );
  let completed = result.rows[0]?.completed === true;
  if (!completed && lostAttempt) {
    // An attempt whose answer was lost may have completed the run: if the run holds exactly this result, it did.
    const { rows } = await db.query<{ done: boolean }>(
      `SELECT (status = 'completed' AND observations_created = $2 AND unknown_fields_count = $3) AS done
         FROM public.interpretation_runs WHERE id = $1`,
      [runId, observationsCreated, unknownFieldsCount],
    );
    completed = rows[0]?.done === true;
  }
  if (!completed) {
    throw new InterpretationRunInactiveError(
      runId,
      `interpretation run ${runId} was finished by someone else (e.g. failed by the timeout sweep) before the work ` +
        'completed; its result was not recorded',
    );
  }
  return { runId, status: 'completed', observationsCreated, unknownFieldsCount, heartbeats, intervalMs };
}
