// Interpretation timeouts across sessions: the sweep against a concurrent completion or heartbeat (both
// orders), its advisory-lock guard, and the withHeartbeat helper (heartbeats, completion, failure, abort
// when the sweep has failed the run).
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { createPool } from '../../src/db/connect.js';
import { InterpretationRunInactiveError, withHeartbeat } from '../../src/heartbeat.js';
import { client, testDatabaseUrl } from './helpers/db.js';
import { makeStale, newRun, runRow, sleep } from './interpretation-fixtures.js';

const SWEEP_LOCK_KEY = '7243530300';

let s1: pg.Client;
let s2: pg.Client;
let observer: pg.Client;

beforeAll(async () => {
  s1 = await client();
  s2 = await client();
  observer = await client();
  // a regression that makes one session wait for the other fails here instead of hanging the suite
  for (const c of [s1, s2]) await c.query("SET statement_timeout = '10s'");
});

// a failed test must not leave a session inside its transaction for the next one
afterEach(async () => {
  await Promise.all([s1, s2].map((c) => c.query('ROLLBACK').catch(() => undefined)));
});

afterAll(async () => {
  await Promise.all([s1, s2, observer].map((c) => c?.end()));
});

describe('cleanup_stale_interpretations against concurrent sessions', () => {
  it('a run being completed while the sweep runs is skipped, not waited for, and stays completed', async () => {
    const runId = await newRun(observer, 'running');
    await makeStale(observer, runId);

    await s1.query('BEGIN');
    const done = await s1.query<{ completed: boolean }>(
      'SELECT public.complete_interpretation_run($1, 7, 2) AS completed',
      [runId],
    );
    expect(done.rows[0]!.completed).toBe(true);

    // session 2 sweeps while session 1 holds the row, uncommitted: SKIP LOCKED passes over it at once
    await s2.query('SELECT public.cleanup_stale_interpretations()');
    expect((await runRow(s2, runId)).status).toBe('running'); // s1's completion is not visible yet

    await s1.query('COMMIT');
    await s2.query('SELECT public.cleanup_stale_interpretations()');
    const row = await runRow(observer, runId);
    expect(row.status).toBe('completed');
    expect(row.error_message).toBeNull();
    expect(row.observations_created).toBe(7);
    expect(row.unknown_fields_count).toBe(2);
  });

  it('a completion arriving while the sweep holds the run waits, then changes nothing: the run stays failed', async () => {
    const runId = await newRun(observer, 'running');
    await makeStale(observer, runId);

    await s2.query('BEGIN');
    const swept = await s2.query<{ n: number }>('SELECT public.cleanup_stale_interpretations() AS n');
    expect(swept.rows[0]!.n).toBeGreaterThanOrEqual(1);

    const completing = s1.query<{ completed: boolean }>(
      'SELECT public.complete_interpretation_run($1, 7, 2) AS completed',
      [runId],
    );
    await waitUntilBlockedByQuery();
    await s2.query('COMMIT');

    expect((await completing).rows[0]!.completed).toBe(false);
    const row = await runRow(observer, runId);
    expect(row.status).toBe('failed');
    expect(row.error_message).toBe('Timeout - no heartbeat');
    expect(row.observations_created).toBe(0);
  });

  it('a heartbeat landing while the sweep runs keeps the run alive', async () => {
    const runId = await newRun(observer, 'running');
    await makeStale(observer, runId);

    await s1.query('BEGIN');
    await s1.query('SELECT public.heartbeat_interpretation($1)', [runId]);
    await s2.query('SELECT public.cleanup_stale_interpretations()');
    await s1.query('COMMIT');
    await s2.query('SELECT public.cleanup_stale_interpretations()');

    const row = await runRow(observer, runId);
    expect(row.status).toBe('running');
    expect(row.timeout_at!.getTime()).toBeGreaterThan(Date.now());
  });

  it('a second sweep while one holds the guard returns 0 at once and touches nothing', async () => {
    const runId = await newRun(observer, 'pending');
    await makeStale(observer, runId);

    await s1.query('BEGIN');
    await s1.query(`SELECT pg_advisory_xact_lock(${SWEEP_LOCK_KEY})`);
    const second = await s2.query<{ n: number }>('SELECT public.cleanup_stale_interpretations() AS n');
    expect(second.rows[0]!.n).toBe(0);
    expect((await runRow(observer, runId)).status).toBe('pending');
    await s1.query('ROLLBACK');

    await s2.query('SELECT public.cleanup_stale_interpretations()');
    expect((await runRow(observer, runId)).status).toBe('failed');
  });
});

/** Waits until some backend is blocked on a lock while running complete_interpretation_run. */
async function waitUntilBlockedByQuery(): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const { rows } = await observer.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity
        WHERE wait_event_type = 'Lock' AND query LIKE 'SELECT public.complete_interpretation_run(%'`,
    );
    if (rows.length > 0) return;
    await sleep(50);
  }
  throw new Error('the completing session never blocked on the row the sweep holds');
}

describe('withHeartbeat', () => {
  let pool: pg.Pool;
  beforeAll(() => {
    pool = createPool(testDatabaseUrl(), 4, 'neotoma-ops-test-heartbeat');
  });
  afterAll(async () => {
    await pool?.end();
  });

  it('marks the run running, heartbeats while the work runs, then records completion with counts', async () => {
    const runId = await newRun(observer, 'pending');
    const seenHeartbeats = new Set<number>();
    const seenDeadlines: number[] = [];
    const result = await withHeartbeat(
      pool,
      runId,
      async () => {
        for (let i = 0; i < 8; i++) {
          await sleep(60);
          const row = await runRow(observer, runId);
          expect(row.status).toBe('running');
          seenHeartbeats.add(row.heartbeat_at!.getTime());
          seenDeadlines.push(row.timeout_at!.getTime());
        }
        return { observationsCreated: 5, unknownFieldsCount: 2 };
      },
      { intervalMs: 100 },
    );

    expect(result.heartbeats).toBeGreaterThanOrEqual(2);
    expect(seenHeartbeats.size).toBeGreaterThanOrEqual(3); // the start, then at least two heartbeats
    expect(seenDeadlines.at(-1)!).toBeGreaterThan(seenDeadlines[0]!); // each heartbeat pushed timeout_at
    const row = await runRow(observer, runId);
    expect(row.status).toBe('completed');
    expect(row.completed_at).not.toBeNull();
    expect(row.error_message).toBeNull();
    expect(row.observations_created).toBe(5);
    expect(row.unknown_fields_count).toBe(2);
  });

  it('records a failure with the error message, rethrows it and stops heartbeating', async () => {
    const runId = await newRun(observer, 'running');
    await expect(
      withHeartbeat(
        pool,
        runId,
        async () => {
          await sleep(250);
          throw new Error('model exploded');
        },
        { intervalMs: 100 },
      ),
    ).rejects.toThrow('model exploded');

    const row = await runRow(observer, runId);
    expect(row.status).toBe('failed');
    expect(row.error_message).toBe('model exploded');
    expect(row.completed_at).not.toBeNull();
    await sleep(300);
    expect((await runRow(observer, runId)).heartbeat_at).toEqual(row.heartbeat_at);
  });

  it('aborts the work when the sweep has failed the run, and leaves the timeout status in place', async () => {
    const runId = await newRun(observer, 'pending');
    let abortReason: unknown;
    const outcome = withHeartbeat(
      pool,
      runId,
      async (signal) => {
        // the worker is silent past its deadline and the sweep fails the run
        await makeStale(observer, runId);
        await observer.query('SELECT public.cleanup_stale_interpretations()');
        await new Promise<void>((_resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('work was not aborted within 5 s')), 5000);
          signal.addEventListener('abort', () => {
            clearTimeout(timer);
            abortReason = signal.reason;
            reject(signal.reason);
          });
        });
        return { observationsCreated: 1 };
      },
      { intervalMs: 100 },
    );

    await expect(outcome).rejects.toBeInstanceOf(InterpretationRunInactiveError);
    expect(abortReason).toBeInstanceOf(InterpretationRunInactiveError);
    const row = await runRow(observer, runId);
    expect(row.status).toBe('failed');
    expect(row.error_message).toBe('Timeout - no heartbeat');
  });

  it('discards the result of work that ignores the abort, without overwriting the failed run', async () => {
    const runId = await newRun(observer, 'running');
    const outcome = withHeartbeat(
      pool,
      runId,
      async () => {
        await makeStale(observer, runId);
        await observer.query('SELECT public.cleanup_stale_interpretations()');
        await sleep(350);
        return { observationsCreated: 9, unknownFieldsCount: 1 };
      },
      { intervalMs: 100 },
    );
    await expect(outcome).rejects.toBeInstanceOf(InterpretationRunInactiveError);
    const row = await runRow(observer, runId);
    expect(row.status).toBe('failed');
    expect(row.error_message).toBe('Timeout - no heartbeat');
    expect(row.observations_created).toBe(0);
  });

  it('refuses to start a finished run and never calls the work', async () => {
    const runId = await newRun(observer, 'running');
    await observer.query('SELECT public.complete_interpretation_run($1, 1, 0)', [runId]);
    let called = false;
    await expect(
      withHeartbeat(pool, runId, async () => {
        called = true;
        return {};
      }),
    ).rejects.toBeInstanceOf(InterpretationRunInactiveError);
    expect(called).toBe(false);
    expect((await runRow(observer, runId)).observations_created).toBe(1);
  });

  it('defaults the heartbeat interval to a third of the configured timeout', async () => {
    const runId = await newRun(observer, 'pending');
    const { rows } = await observer.query<{ ms: string }>(
      'SELECT (extract(epoch FROM public.interpretation_run_timeout()) * 1000)::bigint AS ms',
    );
    const result = await withHeartbeat(s1, runId, async () => ({ observationsCreated: 0 }));
    expect(result.intervalMs).toBe(Math.floor(Number(rows[0]!.ms) / 3));
    expect(result.heartbeats).toBe(0);
    expect((await runRow(observer, runId)).status).toBe('completed');
  });
});
