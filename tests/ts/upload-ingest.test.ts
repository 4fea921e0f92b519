import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ingestSource } from '../../src/ingest.js';
import { FsStorage } from '../../src/storage/index.js';
import { UploadWorker, type WorkerOptions } from '../../src/worker/worker.js';
import type { Throwaway } from './helpers/db.js';
import { ScriptedStorage } from './helpers/scripted-storage.js';
import { enqueueJobs, makeDue, migratedCluster, sha256, waitFor } from './helpers/upload.js';

let db: Throwaway;
let pool: pg.Pool;
let dir: string;
let fsStorage: FsStorage;

beforeAll(async () => {
  db = await migratedCluster();
  pool = new pg.Pool({ connectionString: db.url, max: 4 });
  dir = await mkdtemp(path.join(os.tmpdir(), 'neotoma-ingest-'));
  fsStorage = new FsStorage({ root: dir, durable: false });
});
afterAll(async () => {
  await pool?.end();
  await db?.destroy();
  await rm(dir, { recursive: true, force: true });
});
beforeEach(async () => {
  await pool.query('DELETE FROM public.upload_queue');
});

const quiet = (): void => undefined;
function runOnce(storage: WorkerOptions['storage'], extra: Partial<WorkerOptions> = {}): Promise<import('../../src/worker/worker.js').WorkerStats> {
  return new UploadWorker({ databaseUrl: db.url, storage, once: true, log: quiet, leaseSeconds: 30, ...extra }).run();
}

interface Row {
  storage_status: string;
  status: string;
  retry_count: number;
  next_in: number;
  has_bytes: boolean;
  error_message: string | null;
}
async function state(sourceId: string): Promise<Row[]> {
  const { rows } = await pool.query<Row>(
    `SELECT s.storage_status, q.status, q.retry_count, q.error_message,
            extract(epoch FROM q.next_retry_at - now())::float8 AS next_in,
            EXISTS (SELECT 1 FROM public.upload_queue_payloads p WHERE p.job_id = q.id) AS has_bytes
       FROM public.sources s JOIN public.upload_queue q ON q.source_id = s.id
      WHERE s.id = $1`,
    [sourceId],
  );
  return rows;
}

describe('ingestSource', () => {
  it('stores the bytes and records the source uploaded; the same content again returns the existing source', async () => {
    const user = randomUUID();
    const content = randomBytes(5000);
    const r = await ingestSource(pool, { userId: user, content, mimeType: 'application/pdf', filename: 'a.pdf', provenance: { via: 'test' } }, { storage: fsStorage });
    expect(r).toMatchObject({ status: 'uploaded', contentHash: sha256(content), storageUrl: `${user}/${sha256(content)}`, byteSize: 5000 });
    expect((await readFile(path.join(dir, 'sources', user, sha256(content)))).equals(content)).toBe(true);
    const { rows } = await pool.query('SELECT storage_status, original_filename, provenance, file_size::int FROM public.sources WHERE id = $1', [r.sourceId]);
    expect(rows[0]).toEqual({ storage_status: 'uploaded', original_filename: 'a.pdf', provenance: { via: 'test' }, file_size: 5000 });
    const storage = new ScriptedStorage();
    const again = await ingestSource(pool, { userId: user, content, mimeType: 'application/pdf' }, { storage });
    expect(again).toMatchObject({ status: 'duplicate', sourceId: r.sourceId, storageStatus: 'uploaded' });
    expect(storage.attempts).toBe(0);
    expect((await pool.query('SELECT count(*)::int AS n FROM public.upload_queue')).rows[0].n).toBe(0);
  });

  it('refuses over-quota content before uploading it: the PT402 passes through unchanged, nothing sent or written', async () => {
    const user = randomUUID();
    // the real quota accounting: a user whose storage limit is 50 bytes
    await pool.query(`SELECT public.set_user_plan($1, 'free')`, [user]);
    await pool.query('UPDATE public.storage_usage SET storage_limit_bytes_override = 50 WHERE user_id = $1', [user]);
    const rejections = async (): Promise<number> =>
      Number((await pool.query(`SELECT rejections FROM neotoma_ops.quota_rejection_counts() WHERE resource = 'storage'`)).rows[0].rejections);
    const before = await rejections();
    for (const script of [{ kind: 'ok' }, { kind: 'fail', status: 503 }] as const) {
      const storage = Object.assign(new ScriptedStorage(), { script });
      const err = (await ingestSource(pool, { userId: user, content: randomBytes(100), mimeType: 'text/plain' }, { storage }).catch((e: unknown) => e)) as pg.DatabaseError;
      expect(err).toBeInstanceOf(pg.DatabaseError);
      expect(err.code).toBe('PT402');
      expect(err.message).toBe('Storage quota exceeded: 0 B of 50 B used on plan free; this upload needs 100 B');
      expect(JSON.parse(err.detail!)).toMatchObject({ code: 'STORAGE_QUOTA_EXCEEDED', used_bytes: 0, limit_bytes: 50, requested_bytes: 100 });
      expect(err.hint).toMatch(/upgrade to a larger plan/);
      expect(storage.attempts, 'no bytes sent to storage').toBe(0);
    }
    expect(await rejections(), 'one rejection counted per refused ingest').toBe(before + 2);
    const { rows } = await pool.query(
      `SELECT (SELECT count(*)::int FROM public.sources WHERE user_id = $1) AS sources,
              (SELECT count(*)::int FROM public.upload_queue WHERE user_id = $1) AS jobs,
              (SELECT total_bytes::int FROM public.storage_usage WHERE user_id = $1) AS used`,
      [user],
    );
    expect(rows[0]).toEqual({ sources: 0, jobs: 0, used: 0 });
  });

  it('room taken by a concurrent ingest during the upload: the insert\'s quota error passes through unchanged (both paths)', async () => {
    for (const script of [{ kind: 'ok' }, { kind: 'fail', status: 503 }] as const) {
      const user = randomUUID();
      await pool.query(`SELECT public.set_user_plan($1, 'free')`, [user]);
      await pool.query('UPDATE public.storage_usage SET storage_limit_bytes_override = 50 WHERE user_id = $1', [user]);
      // while this upload runs, another source of the same user fills the quota (the pre-check had passed)
      const storage = new (class extends ScriptedStorage {
        override async put(r: Parameters<ScriptedStorage['put']>[0]): Promise<void> {
          const hash = sha256(randomBytes(8));
          await pool.query(
            `INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
             VALUES ($1, $2, 'text/plain', $3, 40)`,
            [user, hash, `${user}/${hash}`],
          );
          return super.put(r);
        }
      })();
      storage.script = script;
      const err = (await ingestSource(pool, { userId: user, content: randomBytes(30), mimeType: 'text/plain' }, { storage }).catch((e: unknown) => e)) as pg.DatabaseError;
      expect(err).toBeInstanceOf(pg.DatabaseError);
      expect(err.code).toBe('PT402');
      expect(err.message).toBe('Storage quota exceeded: 40 B of 50 B used on plan free; this upload needs 30 B');
      expect(storage.attempts).toBe(1);
      const { rows } = await pool.query(
        `SELECT (SELECT count(*)::int FROM public.sources WHERE user_id = $1) AS sources,
                (SELECT count(*)::int FROM public.upload_queue WHERE user_id = $1) AS jobs,
                (SELECT total_bytes::int FROM public.storage_usage WHERE user_id = $1) AS used`,
        [user],
      );
      expect(rows[0], `only the concurrent source is recorded (${script.kind} path)`).toEqual({ sources: 1, jobs: 0, used: 40 });
    }
  });
});

describe('IT-001: storage failing, then retried by the worker', () => {
  it('pending_retry with one queue row; a worker run with storage healthy stores identical bytes and completes', async () => {
    const user = randomUUID();
    const content = randomBytes(20_000);
    const failing = new ScriptedStorage();
    failing.script = { kind: 'fail', status: 503 };
    const r = await ingestSource(pool, { userId: user, content, mimeType: 'image/png', filename: 'p.png' }, { storage: failing });
    expect(r.status).toBe('pending_retry');
    if (r.status !== 'pending_retry') return;
    expect(r.error).toMatch(/503/);
    const before = await state(r.sourceId);
    expect(before).toHaveLength(1);
    expect(before[0]).toMatchObject({ storage_status: 'pending', status: 'pending', retry_count: 0, has_bytes: true });
    expect(before[0]!.next_in).toBeGreaterThan(25); // retry 1 is 30 s (+0-10 %) ahead
    expect((await pool.query('SELECT id FROM public.upload_queue WHERE source_id = $1', [r.sourceId])).rows[0].id).toBe(r.jobId);

    expect((await runOnce(fsStorage)).claimed).toBe(0); // not due yet
    await makeDue(pool);
    const stats = await runOnce(fsStorage);
    expect(stats).toMatchObject({ claimed: 1, completed: 1 });
    expect((await readFile(path.join(dir, 'sources', user, sha256(content)))).equals(content)).toBe(true);
    const after = await state(r.sourceId);
    expect(after[0]).toMatchObject({ storage_status: 'uploaded', status: 'completed', has_bytes: false });
  });

  it('the bucket travels with the job: the retry stores where the first attempt tried to', async () => {
    const user = randomUUID();
    const content = randomBytes(3_000);
    const failing = new ScriptedStorage();
    failing.script = { kind: 'fail', status: 503 };
    const r = await ingestSource(pool, { userId: user, content, mimeType: 'text/plain' }, { storage: failing, bucket: 'archive' });
    expect(r.status).toBe('pending_retry');
    expect(failing.calls.map((c) => c.bucket)).toEqual(['archive']);
    expect((await pool.query('SELECT bucket FROM public.upload_queue WHERE source_id = $1', [r.sourceId])).rows).toEqual([{ bucket: 'archive' }]);
    await makeDue(pool);
    expect(await runOnce(fsStorage)).toMatchObject({ claimed: 1, completed: 1 });
    expect((await readFile(path.join(dir, 'archive', user, sha256(content)))).equals(content)).toBe(true);
  });

  it('failing every time: failed after the 5th retry, not claimed again, bytes kept; requeue stores it on the next run', async () => {
    const failing = new ScriptedStorage();
    failing.script = { kind: 'fail', status: 503 };
    const content = randomBytes(3000);
    const r = await ingestSource(pool, { userId: randomUUID(), content, mimeType: 'text/plain' }, { storage: failing });
    expect(r.status).toBe('pending_retry');
    for (let retry = 1; retry <= 5; retry++) {
      await makeDue(pool);
      const s = await runOnce(failing);
      expect(s.claimed, `retry ${retry}`).toBe(1);
      const [row] = await state(r.sourceId);
      expect(row!.retry_count).toBe(retry);
      expect(row!.status).toBe(retry < 5 ? 'pending' : 'failed');
    }
    const [failed] = await state(r.sourceId);
    expect(failed).toMatchObject({ storage_status: 'failed', status: 'failed', has_bytes: true });
    expect(failed!.error_message).toMatch(/503/);
    await makeDue(pool);
    expect((await runOnce(fsStorage)).claimed).toBe(0);

    const jobId = (r as { jobId: string }).jobId;
    await pool.query('SELECT public.requeue_upload_job($1)', [jobId]);
    const healthy = new ScriptedStorage();
    expect(await runOnce(healthy)).toMatchObject({ claimed: 1, completed: 1 });
    expect([...healthy.objects.values()][0]!.equals(content)).toBe(true);
    expect((await state(r.sourceId))[0]).toMatchObject({ storage_status: 'uploaded', status: 'completed', has_bytes: false });
  });

  it('a 4xx answer fails the job at once (not retryable); a timeout is retryable', async () => {
    const c = await pool.connect();
    try {
      const [bad] = await enqueueJobs(c, 1);
      const storage = new ScriptedStorage();
      storage.script = { kind: 'fail', status: 403 };
      expect(await runOnce(storage)).toMatchObject({ claimed: 1, failed: 1 });
      expect((await state(bad!.sourceId))[0]).toMatchObject({ status: 'failed', storage_status: 'failed', retry_count: 1 });

      const [slow] = await enqueueJobs(c, 1);
      storage.script = { kind: 'hang' };
      const t0 = Date.now();
      expect(await runOnce(storage, { uploadTimeoutMs: 300 })).toMatchObject({ claimed: 1, retried: 1 });
      expect(Date.now() - t0).toBeLessThan(5000);
      const [row] = await state(slow!.sourceId);
      expect(row).toMatchObject({ status: 'pending', storage_status: 'pending', retry_count: 1 });
      expect(row!.error_message).toMatch(/timed out after 300 ms/);
    } finally {
      c.release();
    }
  });

  it('extends the lease while a long upload runs, so lease expiry does not take the job away', async () => {
    const c = await pool.connect();
    try {
      const [job] = await enqueueJobs(c, 1);
      const storage = new ScriptedStorage();
      storage.script = { kind: 'ok', delayMs: 2500 };
      const run = runOnce(storage, { leaseSeconds: 1 });
      await new Promise((r) => setTimeout(r, 1800)); // past the first lease
      const processed = (await pool.query<{ r: { rescued: number } }>('SELECT public.process_upload_queue() AS r')).rows[0]!.r;
      expect(processed.rescued).toBe(0);
      expect(await run).toMatchObject({ claimed: 1, completed: 1, lost: 0 });
      expect((await state(job!.sourceId))[0]).toMatchObject({ status: 'completed', retry_count: 0 });
    } finally {
      c.release();
    }
  });
});

describe('large payloads', () => {
  it('the worker reads a payload over 4 MiB in slices and stores identical bytes', async () => {
    const failing = new ScriptedStorage();
    failing.script = { kind: 'fail', status: 500 };
    const user = randomUUID();
    const content = randomBytes(9 * 1024 * 1024 + 123);
    const r = await ingestSource(pool, { userId: user, content, mimeType: 'application/zip' }, { storage: failing });
    expect(r.status).toBe('pending_retry');
    await makeDue(pool);
    expect(await runOnce(fsStorage)).toMatchObject({ claimed: 1, completed: 1 });
    expect((await readFile(path.join(dir, 'sources', user, sha256(content)))).equals(content)).toBe(true);
  });
});

describe('connection lost during the ingest transaction', () => {
  it('rejects the call, leaves no partial rows, and the pool discards the broken connection (no process crash)', async () => {
    const apiPool = new pg.Pool({ connectionString: db.url, max: 1, application_name: 'ingest-under-test' });
    // the pool's own handler covers idle clients only; a checked-out client must be covered by ingestSource
    apiPool.on('error', () => undefined);
    const blocker = await pool.connect();
    try {
      const failing = new ScriptedStorage();
      failing.script = { kind: 'fail', status: 503 };
      const user = randomUUID();
      // the source INSERT goes through; enqueue_upload then waits on the queue table inside the transaction
      await blocker.query('BEGIN');
      await blocker.query('LOCK TABLE public.upload_queue IN ACCESS EXCLUSIVE MODE');
      const pending = ingestSource(apiPool, { userId: user, content: randomBytes(1000), mimeType: 'text/plain' }, { storage: failing });
      const outcome = pending.then(
        () => 'resolved',
        (err: Error) => err.message,
      );
      const pid = await waitFor('the ingest transaction waiting on the queue lock', async () =>
        (await pool.query<{ pid: number }>(
          `SELECT pid FROM pg_stat_activity WHERE application_name = 'ingest-under-test' AND wait_event_type = 'Lock'`,
        )).rows[0]?.pid, 5000, 25);
      await pool.query('SELECT pg_terminate_backend($1)', [pid]);
      expect(await outcome).toMatch(/terminat/i);
      await blocker.query('ROLLBACK');
      // the socket's 'end' (the event that used to be uncaught) arrives after the rejection
      await waitFor('the broken connection discarded by the pool', async () => apiPool.totalCount === 0, 5000, 10);
      const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM public.sources WHERE user_id = $1', [user]);
      expect(rows[0]!.n, 'transaction rolled back').toBe(0);
      // the same pool serves the next ingest on a fresh connection
      const again = await ingestSource(apiPool, { userId: user, content: randomBytes(1000), mimeType: 'text/plain' }, { storage: failing });
      expect(again.status).toBe('pending_retry');
    } finally {
      await blocker.query('ROLLBACK').catch(() => undefined);
      blocker.release();
      await apiPool.end();
    }
  });
});
