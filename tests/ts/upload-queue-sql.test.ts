// Upload queue SQL behaviour that needs more than one session: SKIP LOCKED claims, concurrent claimers,
// the processor's advisory-lock guard, NOTIFY upload_queue, and the worker's batched completions. Runs on a
// cluster of its own so that no other suite's worker can claim these jobs.
import { createHash, randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { migrateUp } from '../../src/migrate.js';
import { CompletionBatcher } from '../../src/worker/completions.js';
import { UploadWorker, type WorkerStats } from '../../src/worker/worker.js';
import { client, throwawayCluster, type Throwaway } from './helpers/db.js';

const PROCESSOR_LOCK_KEY = '7402000200';
const USER = '44444444-4444-4444-4444-444444444444';

let tc: Throwaway;
let admin: pg.Client;

interface Claimed {
  job_id: string;
  lease_token: string;
  locked_until: Date;
}

/** Inserts a pending source and enqueues its bytes; the job is made due now. Returns the job id. */
async function dueJob(c: pg.Client, content = randomUUID()): Promise<string> {
  const bytes = Buffer.from(content);
  const hash = createHash('sha256').update(bytes).digest('hex');
  const src = await c.query<{ id: string }>(
    `INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size, storage_status)
     VALUES ($1, $2, 'text/plain', $3, $4, 'pending') RETURNING id`,
    [USER, hash, `${USER}/${hash}`, bytes.length],
  );
  const job = await c.query<{ id: string }>('SELECT public.enqueue_upload($1, $2) AS id', [src.rows[0]!.id, bytes]);
  const id = job.rows[0]!.id;
  await c.query(`UPDATE public.upload_queue SET next_retry_at = now() - interval '1 second' WHERE id = $1`, [id]);
  return id;
}

async function claim(c: pg.Client, worker: string, limit: number): Promise<Claimed[]> {
  const r = await c.query<Claimed>('SELECT job_id, lease_token, locked_until FROM public.claim_upload_jobs($1, $2)', [
    worker,
    limit,
  ]);
  return r.rows;
}

beforeAll(async () => {
  tc = await throwawayCluster();
  await migrateUp(tc.url);
  admin = await client(tc.url);
});

afterAll(async () => {
  await admin?.end();
  await tc?.destroy();
});

beforeEach(async () => {
  await admin.query('DELETE FROM public.sources WHERE user_id = $1', [USER]);
});

describe('claim_upload_jobs across sessions', () => {
  it('skips rows another open transaction has claimed instead of waiting, and a rollback gives them back', async () => {
    const a = await client(tc.url);
    const b = await client(tc.url);
    try {
      const first = await dueJob(admin);
      const others = [await dueJob(admin), await dueJob(admin)];
      await a.query('BEGIN');
      const byA = await claim(a, 'worker-a', 1);
      expect(byA.map((r) => r.job_id)).toEqual([first]);

      // without SKIP LOCKED this would wait for A's transaction; the timeout turns a wait into a failure
      await b.query(`SET statement_timeout = '3s'`);
      const byB = await claim(b, 'worker-b', 10);
      expect(byB.map((r) => r.job_id).sort()).toEqual([...others].sort());

      await a.query('ROLLBACK');
      const state = await admin.query<{ status: string; lease_token: string | null }>(
        'SELECT status, lease_token FROM public.upload_queue WHERE id = $1',
        [first],
      );
      expect(state.rows[0]).toEqual({ status: 'pending', lease_token: null });
      expect((await claim(b, 'worker-b', 10)).map((r) => r.job_id)).toEqual([first]);
    } finally {
      await a.end();
      await b.end();
    }
  });

  it('hands each job to exactly one of 4 concurrent claimers', async () => {
    const jobs = 200;
    await admin.query('BEGIN');
    const ids: string[] = [];
    for (let i = 0; i < jobs; i += 1) ids.push(await dueJob(admin));
    await admin.query('COMMIT');

    const sessions = await Promise.all([0, 1, 2, 3].map(() => client(tc.url)));
    try {
      const claimed = await Promise.all(
        sessions.map(async (s, n) => {
          const mine: string[] = [];
          for (;;) {
            const rows = await claim(s, `worker-${n}`, 7);
            if (rows.length === 0) return mine;
            mine.push(...rows.map((r) => r.job_id));
          }
        }),
      );
      const all = claimed.flat();
      expect(all.length).toBe(jobs);
      expect(new Set(all).size).toBe(jobs);
      expect([...all].sort()).toEqual([...ids].sort());
      const perWorker = await admin.query<{ n: string }>(
        `SELECT count(DISTINCT locked_by) AS n FROM public.upload_queue WHERE id = ANY($1::uuid[])`,
        [ids],
      );
      expect(Number(perWorker.rows[0]!.n)).toBeGreaterThan(1);
    } finally {
      await Promise.all(sessions.map((s) => s.end()));
    }
  });
});

describe('process_upload_queue across sessions', () => {
  it('returns {"skipped":true} and changes nothing while another run holds its lock', async () => {
    const holder = await client(tc.url);
    try {
      const job = await dueJob(admin);
      await claim(admin, 'worker-a', 1);
      await admin.query(`UPDATE public.upload_queue SET locked_until = now() - interval '1 second' WHERE id = $1`, [job]);

      await holder.query('BEGIN');
      await holder.query(`SELECT pg_advisory_xact_lock(${PROCESSOR_LOCK_KEY})`);
      const skipped = await admin.query<{ r: Record<string, unknown> }>('SELECT public.process_upload_queue() AS r');
      expect(skipped.rows[0]!.r).toMatchObject({ skipped: true, rescued: 0, failed: 0, pruned: 0, due: 0 });
      const still = await admin.query<{ status: string }>('SELECT status FROM public.upload_queue WHERE id = $1', [job]);
      expect(still.rows[0]!.status).toBe('in_progress');

      await holder.query('COMMIT');
      const ran = await admin.query<{ r: Record<string, unknown> }>('SELECT public.process_upload_queue() AS r');
      expect(ran.rows[0]!.r).toMatchObject({ rescued: 1, failed: 0 });
      expect(ran.rows[0]!.r).not.toHaveProperty('skipped');
    } finally {
      await holder.end();
    }
  });
});

describe('NOTIFY upload_queue', () => {
  it('announces an enqueued job on commit, and due work when the processor finds it', async () => {
    const listener = await client(tc.url);
    try {
      const received: Record<string, unknown>[] = [];
      listener.on('notification', (n) => {
        if (n.channel === 'upload_queue' && n.payload) received.push(JSON.parse(n.payload) as Record<string, unknown>);
      });
      await listener.query('LISTEN upload_queue');
      const waitFor = async (pred: (m: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> => {
        const deadline = Date.now() + 5000;
        for (;;) {
          const hit = received.find(pred);
          if (hit) return hit;
          if (Date.now() > deadline) throw new Error(`no matching notification; got ${JSON.stringify(received)}`);
          await new Promise((r) => setTimeout(r, 20));
        }
      };

      // inside an open transaction nothing is sent yet
      await admin.query('BEGIN');
      await admin.query(`SET LOCAL TimeZone = 'America/New_York'`);
      const job = await dueJob(admin);
      await new Promise((r) => setTimeout(r, 200));
      expect(received.filter((m) => m.job_id === job)).toEqual([]);
      await admin.query('COMMIT');
      const enq = await waitFor((m) => m.event === 'enqueued' && m.job_id === job);
      // due_at is UTC ISO 8601 whatever the session TimeZone, about 30 s ahead (retry 1)
      expect(enq.due_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/);
      const ahead = Date.parse(String(enq.due_at)) - Date.now();
      expect(ahead).toBeGreaterThan(20_000);
      expect(ahead).toBeLessThan(40_000);

      const result = await admin.query<{ r: { due: number } }>('SELECT public.process_upload_queue() AS r');
      expect(result.rows[0]!.r.due).toBe(1);
      expect(await waitFor((m) => m.event === 'due')).toEqual({ event: 'due', due: 1 });
    } finally {
      await listener.end();
    }
  });
});

describe('worker completions in batches', () => {
  it('sends completions that arrive while a call is in flight together, each fenced by its own token', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await dueJob(admin));
    const claimed = await admin.query<{ job_id: string; lease_token: string; content: Buffer | null }>(
      `SELECT job_id, lease_token, content FROM public.claim_upload_jobs_with_content('batcher', 5, interval '1 minute')`,
    );
    expect(claimed.rows.map((r) => r.job_id).sort()).toEqual([...ids].sort());
    const stored = await admin.query<{ job_id: string; content: Buffer }>(
      'SELECT job_id, content FROM public.upload_queue_payloads WHERE job_id = ANY($1::uuid[])',
      [ids],
    );
    for (const r of claimed.rows) expect(r.content).toEqual(stored.rows.find((s) => s.job_id === r.job_id)!.content);

    const pool = new pg.Pool({ connectionString: tc.url, max: 2 });
    const calls: number[] = [];
    const counting = new Proxy(pool, {
      get(target, prop, receiver) {
        if (prop !== 'query') return Reflect.get(target, prop, receiver);
        return (query: pg.QueryConfig<unknown[][]>) => {
          calls.push(query.values![0]!.length);
          return target.query(query);
        };
      },
    });
    try {
      const batcher = new CompletionBatcher(counting);
      const stale = claimed.rows[2]!.job_id;
      const complete = (r: { job_id: string; lease_token: string }): Promise<boolean> =>
        batcher.complete(r.job_id, r.job_id === stale ? randomUUID() : r.lease_token, null);
      // the first is sent once the current turn ends; the other four arrive while it is in flight
      const first = complete(claimed.rows[0]!);
      await new Promise((r) => setImmediate(r));
      expect(calls).toEqual([1]);
      const results = await Promise.all([first, ...claimed.rows.slice(1).map(complete)]);
      expect(results).toEqual(claimed.rows.map((r) => r.job_id !== stale));
      expect(calls).toEqual([1, 4]); // the four waited for it and went together
      const states = await admin.query<{ id: string; status: string; bytes: boolean }>(
        `SELECT q.id, q.status, EXISTS (SELECT 1 FROM public.upload_queue_payloads AS p WHERE p.job_id = q.id) AS bytes
           FROM public.upload_queue AS q WHERE q.id = ANY($1::uuid[])`,
        [ids],
      );
      for (const s of states.rows) {
        expect(s).toEqual(s.id === stale ? { id: s.id, status: 'in_progress', bytes: true } : { id: s.id, status: 'completed', bytes: false });
      }
    } finally {
      await pool.end();
    }
  });
});

describe('worker slots', () => {
  it('refuses a completion batch size outside 1..1000, naming the option', () => {
    for (const bad of [0, -1, 1.5, 1001, Number.NaN]) {
      expect(() => new UploadWorker({ databaseUrl: tc.url, storage: { backend: 'memory', put: async () => undefined }, completionBatchSize: bad }))
        .toThrow(/completionBatchSize must be an integer from 1 to 1000/);
    }
  });

  it('frees a slot when its upload ends, and the claim that fills it records the completion in the same call', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push(await dueJob(admin));
    const puts: string[] = [];
    const storage = { backend: 'memory', put: async (r: { key: string }): Promise<void> => void puts.push(r.key) };
    const pool = new pg.Pool({ connectionString: tc.url, max: 3 });
    // every queue call the worker makes, with the completions it carried
    const calls: { fn: string; completions: number }[] = [];
    const counting = new Proxy(pool, {
      get(target, prop, receiver) {
        if (prop !== 'query') return Reflect.get(target, prop, receiver);
        return (query: pg.QueryConfig<unknown[]> | string, values?: unknown[]) => {
          const text = typeof query === 'string' ? query : query.text;
          const fn = /public\.(\w+)\(/.exec(text)?.[1] ?? text;
          const args = typeof query === 'string' ? values : query.values;
          const carried = fn === 'complete_upload_jobs' || fn === 'complete_and_claim_upload_jobs' ? (args![0] as unknown[]).length : 0;
          calls.push({ fn, completions: carried });
          return typeof query === 'string' ? target.query(query, values) : target.query(query);
        };
      },
    });
    const worker = new UploadWorker({
      pool: counting,
      storage,
      concurrency: 1,
      once: true,
      leaseSeconds: 60,
      workerId: 'slots',
      log: () => undefined,
    });
    try {
      expect(await worker.run()).toMatchObject({ claimed: 6, completed: 6 });
    } finally {
      await pool.end();
    }
    expect(new Set(puts).size).toBe(6);
    expect(puts).toHaveLength(6);
    const done = await admin.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM public.upload_queue WHERE id = ANY($1::uuid[]) AND status = 'completed'`,
      [ids],
    );
    expect(done.rows[0]!.n).toBe(6);
    // one slot: each upload's completion goes with the claim of the next job (the last one's with a claim that
    // finds nothing), so every completion was carried by a claim and no call was spent on a completion alone
    const carried = calls.filter((c) => c.fn === 'complete_and_claim_upload_jobs').reduce((n, c) => n + c.completions, 0);
    const alone = calls.filter((c) => c.fn === 'complete_upload_jobs').reduce((n, c) => n + c.completions, 0);
    expect(carried + alone).toBe(6);
    expect(carried).toBe(6);
    // claims without completions: the first, and at most one more that finds the queue empty at the end
    expect(calls.filter((c) => c.fn === 'claim_upload_jobs_with_content').length).toBeLessThanOrEqual(2);
  });

  it('a completion that waits on a lock holds back the claim that carries it; both go through once it is released', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await dueJob(admin));
    // completions block on the source rows this transaction locks; the claim that carries the first one waits
    // with it, and the worker claims nothing more meanwhile (one transaction for both)
    const puts: string[] = [];
    const storage = { backend: 'memory', put: async (r: { key: string }): Promise<void> => void puts.push(r.key) };
    const worker = new UploadWorker({
      databaseUrl: tc.url,
      storage,
      concurrency: 1,
      once: true,
      leaseSeconds: 60,
      workerId: 'slots-blocked',
      log: () => undefined,
    });
    await admin.query('BEGIN');
    await admin.query('SELECT id FROM public.sources WHERE user_id = $1 FOR UPDATE', [USER]);
    let run: Promise<WorkerStats> | undefined;
    try {
      run = worker.run();
      const deadline = Date.now() + 10_000;
      while (puts.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 500));
      expect(puts).toHaveLength(1);
      const open = await admin.query<{ status: string; n: number }>(
        'SELECT status, count(*)::int AS n FROM public.upload_queue WHERE id = ANY($1::uuid[]) GROUP BY status ORDER BY status',
        [ids],
      );
      expect(open.rows).toEqual([{ status: 'in_progress', n: 1 }, { status: 'pending', n: 2 }]);
    } finally {
      await admin.query('COMMIT');
    }
    expect(await run).toMatchObject({ claimed: 3, completed: 3 });
    expect(new Set(puts).size).toBe(3);
    const done = await admin.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM public.upload_queue WHERE id = ANY($1::uuid[]) AND status = 'completed'`,
      [ids],
    );
    expect(done.rows[0]!.n).toBe(3);
  });
});
