import type pg from 'pg';
import { errorCode, isBrokenClient, isConnectionLost } from '../../../../src/db/errors.js';
import { sleep } from './config.js';

/**
 * Errors that mean "the database is not reachable right now" (the restart), not an answer of the database.
 * A broken pool client counts too: the soak only asks whether the outage caused the error.
 */
export function isConnectionError(err: unknown): boolean {
  return isConnectionLost(err) || isBrokenClient(err);
}

/** What the soak counts while it runs: the report's figures, and the samples some invariants check. */
export function newFigures() {
  return {
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
}
export type Figures = ReturnType<typeof newFigures>;

/** What the parts of one soak share: its start, pool and log, the counts, unexpected errors and the restart. */
export class SoakContext {
  readonly f: Figures = newFigures();
  readonly unexpected: string[] = [];
  /** [start, end] of each database restart (ms since the epoch). */
  readonly restartWindows: Array<[number, number]> = [];
  restarting = false;

  constructor(
    readonly t0: number,
    readonly pool: pg.Pool,
    readonly log: (line: string) => void,
  ) {}

  /** A connection error is expected only while (or just after) the database restarts. */
  expectedOutage(at: number): boolean {
    return this.restarting || this.restartWindows.some(([a, b]) => at >= a - 500 && at <= b + 10_000);
  }

  unexpectedError(where: string, err: unknown): void {
    if (this.unexpected.length < 50) this.unexpected.push(`${where}: ${errorCode(err) ?? ''} ${(err as Error)?.message ?? String(err)}`);
  }

  /** Runs `op`, retrying while the database is restarting; other errors are thrown. */
  async retryingOutage<T>(where: string, op: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      try {
        return await op();
      } catch (err) {
        if (!isConnectionError(err) || Date.now() > deadline) throw err;
        if (!this.expectedOutage(Date.now())) this.unexpectedError(`${where} (connection error outside the restart)`, err);
        this.f.dbUnavailableRetries++;
        await sleep(250);
      }
    }
  }
}
