// The outage budget under concurrency (migration 0012): completions give bytes back on shards, without waiting on
// the row that enqueues lock to check the cap. Workers completing jobs at the same time as API servers enqueue
// near the cap: the queue never holds more than the cap, and at the end the bytes held equal the payloads exactly.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Throwaway } from './helpers/db.js';
import { enqueueJobs, migratedCluster } from './helpers/upload.js';

let db: Throwaway;
let pool: pg.Pool;

beforeAll(async () => {
  db = await migratedCluster();
  pool = new pg.Pool({ connectionString: db.url, max: 16 });
}, 120_000);

afterAll(() => pool?.end().then(() => db?.destroy()));

interface Budget { held: number; truth: number; cap: number }

/** The bytes held by the counters, the payloads' bytes and the cap, in one snapshot. */
const budget = async (c: pg.ClientBase | pg.Pool): Promise<Budget> =>
  (await c.query<Budget>(
    `SELECT neotoma_ops.upload_queue_payload_bytes_held()::float8 AS held,
            (SELECT coalesce(sum(octet_length(p.content)), 0) FROM public.upload_queue_payloads AS p)::float8 AS truth,
            (SELECT s.payload_bytes_cap FROM neotoma_ops.upload_queue_settings AS s)::float8 AS cap`)).rows[0]!;

/** Pending sources of `contents` and their jobs, in one statement (as ingest does when storage is down). */
const enqueue = (c: pg.ClientBase | pg.Pool, userId: string, ...contents: Buffer[]): Promise<pg.QueryResult> =>
  c.query(
    `WITH input AS (SELECT b.content, encode(sha256(b.content), 'hex') AS hash FROM unnest($2::bytea[]) AS b(content)),
     s AS (
       INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size, storage_status)
       SELECT $1::uuid, i.hash, 'application/octet-stream', $1::text || '/' || i.hash, octet_length(i.content), 'pending'
         FROM input AS i
       RETURNING id, content_hash)
     SELECT public.enqueue_upload(s.id, i.content, 'storage down') AS job_id FROM s JOIN input AS i ON i.hash = s.content_hash`,
    [userId, contents]);

/** Claims one due job and completes it; false when none was due. */
const completeOne = async (c: pg.ClientBase | pg.Pool, worker: string): Promise<boolean> => {
  const { rows } = await c.query<{ completed: boolean }>(
    `SELECT c.completed FROM public.claim_upload_jobs($1, 1) AS j,
            LATERAL public.complete_upload_jobs(ARRAY[j.job_id], ARRAY[j.lease_token], NULL) AS c`, [worker]);
  if (rows.length === 0) return false;
  expect(rows[0]!.completed).toBe(true);
  return true;
};

const connect = async (): Promise<pg.Client> => {
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  return c;
};

describe('the outage budget under concurrency', () => {
  it('a completion does not wait for an enqueue in flight; bytes given back count once committed', async () => {
    const user = randomUUID();
    await pool.query('UPDATE neotoma_ops.upload_queue_settings SET payload_bytes_cap = 10737418240');
    const setup = await connect();
    const a = await connect();
    const b = await connect();
    try {
      await enqueueJobs(setup, 2, user, 1000);
      // a: an enqueue not committed yet holds the singleton's lock
      await a.query('BEGIN');
      await enqueue(a, user, randomBytes(500));
      // b: a completion meanwhile (before 0012 it queued on that lock until a committed)
      await b.query(`SET lock_timeout = '2s'`);
      expect(await completeOne(b, 'worker-b')).toBe(true);
      await a.query('COMMIT');
      const after = await budget(pool);
      expect(after.held).toBe(after.truth);

      // the cap is checked against the bytes given back by committed transactions only
      await pool.query('UPDATE neotoma_ops.upload_queue_settings SET payload_bytes_cap = $1', [after.held]);
      await b.query('BEGIN');
      expect(await completeOne(b, 'worker-b')).toBe(true); // 1000 bytes given back, not committed
      const refused = await enqueue(a, user, randomBytes(600)).catch((e: { code?: string }) => e);
      expect((refused as { code?: string }).code).toBe('PT503'); // b's bytes are not free until b commits
      await b.query('COMMIT');
      await enqueue(a, user, randomBytes(600)); // now they are free
      const end = await budget(pool);
      expect(end.held).toBe(end.truth);
      expect(end.truth).toBeLessThanOrEqual(end.cap);
    } finally {
      await Promise.all([setup, a, b].map((c) => c.query('ROLLBACK').catch(() => undefined).then(() => c.end())));
    }
  });

  it('workers completing while others enqueue near the cap: the cap is never passed, the bytes held stay exact', async () => {
    const user = randomUUID();
    const jobSize = 100;
    const queued = 400;
    const setup = await connect();
    let due = 0;
    try {
      await setup.query('UPDATE neotoma_ops.upload_queue_settings SET payload_bytes_cap = 10737418240');
      await enqueueJobs(setup, queued, user, jobSize); // every pending job due now (those of the test above too)
      due = (await setup.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.upload_queue WHERE status = 'pending'`)).rows[0]!.n;
      expect(due).toBeGreaterThanOrEqual(queued);
      const start = await budget(setup);
      expect(start.held).toBe(start.truth);
      // the queue starts full: enqueues are refused until completions give bytes back
      await setup.query('UPDATE neotoma_ops.upload_queue_settings SET payload_bytes_cap = $1', [start.truth]);
    } finally {
      await setup.end();
    }

    const completers = 6;
    const enqueuers = 4;
    const clients = await Promise.all(Array.from({ length: completers + enqueuers + 1 }, connect));
    const observer = clients.pop()!;
    const seen: Budget[] = [];
    let accepted = 0;
    let refused = 0;
    let completed = 0;
    let draining = true;
    try {
      const complete = async (c: pg.Client, i: number): Promise<void> => {
        while (await completeOne(c, `worker-${i}`)) completed += 1;
      };
      // each API server uploads for users of its own (uploads of one user queue on that user's usage row)
      const add = async (c: pg.Client): Promise<void> => {
        const owner = randomUUID();
        while (draining) {
          // 10 to 20 times what a completion gives back: the queue stays at its cap
          const batch = [randomBytes(10 * jobSize + Math.floor(Math.random() * 10 * jobSize))];
          await c.query('BEGIN');
          try {
            await enqueue(c, owner, ...batch);
            // after each successful enqueue, before its commit: the payloads committed and its own
            seen.push(await budget(c));
            await c.query('COMMIT');
            accepted += 1;
          } catch (e) {
            await c.query('ROLLBACK');
            if ((e as { code?: string }).code !== 'PT503') {
              draining = false;
              throw e;
            }
            refused += 1;
          }
        }
      };
      const watch = async (): Promise<void> => {
        while (draining) seen.push(await budget(observer));
      };
      for (const c of clients.slice(completers)) {
        const e = await enqueue(c, user, randomBytes(jobSize)).catch((err: { code?: string }) => err);
        expect((e as { code?: string }).code).toBe('PT503'); // full, before any completion
        refused += 1;
      }
      const adding = Promise.all([...clients.slice(completers).map(add), watch()]);
      adding.catch(() => undefined); // awaited below
      await Promise.all(clients.slice(0, completers).map(complete));
      draining = false;
      await adding;
    } finally {
      draining = false;
      await Promise.all([...clients, observer].map((c) => c.end()));
    }

    expect(completed).toBe(due); // enqueued jobs are due later: only those were claimed
    expect(accepted).toBeGreaterThan(0); // completions made room, enqueues took it
    expect(refused).toBeGreaterThanOrEqual(enqueuers);
    for (const b of seen) {
      expect(b.truth).toBeLessThanOrEqual(b.cap);
      expect(b.held).toBeLessThanOrEqual(b.cap);
      expect(b.held).toBe(b.truth); // one snapshot: a change and its count together
    }
    const end = await budget(pool);
    expect(end.held).toBe(end.truth);
    expect(end.truth).toBeLessThanOrEqual(end.cap);
    const { rows } = await pool.query<{ shards: number; freed: string }>(
      'SELECT count(*)::int AS shards, sum(bytes)::text AS freed FROM neotoma_ops.upload_queue_payload_bytes_freed');
    expect(rows[0]!.shards).toBeGreaterThan(1); // the completions were spread over shards
    expect(BigInt(rows[0]!.freed)).toBeGreaterThanOrEqual(BigInt(queued * jobSize));
    const fix = await pool.query<{ fix: number }>('SELECT neotoma_ops.upload_queue_payload_bytes_reconcile()::int AS fix');
    expect(fix.rows[0]!.fix).toBe(0); // nothing to correct
  });
});
