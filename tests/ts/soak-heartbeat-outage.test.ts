import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withHeartbeat, type Queryable } from '../../src/heartbeat.js';
import { testDatabaseUrl } from './helpers/db.js';
import { newRun, runRow } from './interpretation-fixtures.js';

// Found by the soak: a connection lost around the database restart made withHeartbeat throw on the final
// complete/fail call; the run then stayed 'running' until the sweep failed it as 'Timeout - no heartbeat' (and
// refunded the quota unit) although the work had finished. The final calls are now retried while the
// connection is down, and a completion whose answer was lost is recognised.

/** Loses the connection on the next query matching `match`: before it reaches the database, or after it ran. */
class LosesConnection implements Queryable {
  constructor(private readonly pool: pg.Pool) {}
  trap: { match: RegExp; afterRunning: boolean; times: number } | undefined;
  async query<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>> {
    const t = this.trap;
    if (t && t.times > 0 && t.match.test(text)) {
      t.times--;
      if (t.afterRunning) await this.pool.query(text, values);
      throw new Error('Connection terminated unexpectedly');
    }
    return this.pool.query<R>(text, values);
  }
}

let pool: pg.Pool;
let observer: pg.Client;
beforeAll(async () => {
  pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 4 });
  observer = new pg.Client({ connectionString: testDatabaseUrl() });
  await observer.connect();
});
afterAll(async () => {
  await observer?.end();
  await pool?.end();
});

describe('withHeartbeat across a lost connection', () => {
  it('records the completion when the connection drops before the complete call arrives', async () => {
    const runId = await newRun(observer, 'pending');
    const db = new LosesConnection(pool);
    db.trap = { match: /complete_interpretation_run/, afterRunning: false, times: 2 };
    const r = await withHeartbeat(db, runId, async () => ({ observationsCreated: 3 }), { intervalMs: 1000 });
    expect(r.status).toBe('completed');
    const row = await runRow(observer, runId);
    expect(row.status).toBe('completed');
    expect(row.observations_created).toBe(3);
  });

  it('recognises a completion that committed but whose answer was lost', async () => {
    const runId = await newRun(observer, 'pending');
    const db = new LosesConnection(pool);
    db.trap = { match: /complete_interpretation_run/, afterRunning: true, times: 1 };
    const r = await withHeartbeat(db, runId, async () => ({ observationsCreated: 2, unknownFieldsCount: 1 }), { intervalMs: 1000 });
    expect(r.observationsCreated).toBe(2);
    expect((await runRow(observer, runId)).status).toBe('completed');
  });

  it('records a failure of the work and starts the run through a dropped connection', async () => {
    const runId = await newRun(observer, 'pending');
    const db = new LosesConnection(pool);
    db.trap = { match: /start_interpretation_run/, afterRunning: false, times: 1 };
    const r = await withHeartbeat(db, runId, async () => ({}), { intervalMs: 1000 });
    expect(r.status).toBe('completed');

    const failing = await newRun(observer, 'pending');
    db.trap = { match: /fail_interpretation_run/, afterRunning: false, times: 1 };
    await expect(
      withHeartbeat(db, failing, async () => {
        throw new Error('model refused');
      }, { intervalMs: 1000 }),
    ).rejects.toThrow('model refused');
    const row = await runRow(observer, failing);
    expect(row.status).toBe('failed');
    expect(row.error_message).toBe('model refused');
  });
});
