// The outage budget seen from the API server: while storage is down, ingestSource() queues bytes until the queue
// holds its cap; past it, uploads that need the queue are refused with PT503 UPLOAD_QUEUE_FULL (nothing written),
// uploads that storage takes directly still work, and nothing already queued is lost.
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ingestSource } from '../../src/ingest.js';
import { FsStorage } from '../../src/storage/fs.js';
import { StorageError, type StorageAdapter } from '../../src/storage/types.js';
import { drainUploadQueue } from '../../src/worker/drain.js';
import type { Throwaway } from './helpers/db.js';
import { jobStatus, migratedCluster, sha256 } from './helpers/upload.js';

const down: StorageAdapter = {
  backend: 'down',
  put: () => Promise.reject(new StorageError('storage: connect ECONNREFUSED', { retryable: true, code: 'ECONNREFUSED' })),
};

let db: Throwaway;
let pool: pg.Pool;
let dir: string;

beforeAll(async () => {
  db = await migratedCluster();
  pool = new pg.Pool({ connectionString: db.url, max: 4 });
  dir = await mkdtemp(path.join(os.tmpdir(), 'neotoma-outage-'));
}, 120_000);

afterAll(() => pool?.end().then(() => db?.destroy()).then(() => rm(dir, { recursive: true, force: true })));

const metric = async (name: string): Promise<number> =>
  Number((await pool.query<{ value: number }>('SELECT value FROM public.ops_metrics() WHERE metric = $1', [name])).rows[0]?.value);

describe('the outage budget', () => {
  it('queues until the cap, then refuses with UPLOAD_QUEUE_FULL; direct uploads still work; the queue drains and accepts again', async () => {
    const user = randomUUID();
    await pool.query('UPDATE neotoma_ops.upload_queue_settings SET payload_bytes_cap = 5000');
    const first = randomBytes(3000);
    const queued = await ingestSource(pool, { userId: user, content: first, mimeType: 'application/octet-stream' }, { storage: down });
    expect(queued.status).toBe('pending_retry');
    expect(await metric('upload_queue_payload_bytes')).toBe(3000);

    const second = randomBytes(2500);
    const err = (await ingestSource(pool, { userId: user, content: second, mimeType: 'application/octet-stream' }, { storage: down })
      .catch((e: unknown) => e)) as { code?: string; message?: string; detail?: string; hint?: string };
    expect(err.code).toBe('PT503');
    expect(err.message).toBe('Upload queue full: it holds 2.93 KiB of its 4.88 KiB outage budget '
      + '(2.93 KiB for jobs still trying, 0 B for jobs that failed); this upload needs 2.44 KiB');
    expect(JSON.parse(err.detail!)).toEqual({ code: 'UPLOAD_QUEUE_FULL', held_bytes: 3000, pending_bytes: 3000, failed_bytes: 0,
                                              cap_bytes: 5000, requested_bytes: 2500 });
    expect(err.hint).toMatch(/^Retry later; nothing was written\. .*jobs still trying drain by themselves/);
    const refused = await pool.query('SELECT 1 FROM public.sources WHERE user_id = $1 AND content_hash = $2', [user, sha256(second)]);
    expect(refused.rowCount).toBe(0); // the source row went with the refused enqueue
    expect(await metric('upload_queue_full_rejections_total')).toBe(1);

    // storage that answers takes the upload directly: the queue is not involved
    const fs = new FsStorage({ root: dir });
    const direct = await ingestSource(pool, { userId: user, content: second, mimeType: 'application/octet-stream' }, { storage: fs });
    expect(direct.status).toBe('uploaded');

    // nothing queued was lost: storage comes back, the job is stored, the budget is free again
    expect(await jobStatus(pool)).toEqual({ pending: 1 });
    await pool.query(`UPDATE public.upload_queue SET next_retry_at = now() - interval '1 second'`);
    const drained = await drainUploadQueue({ pool, storage: fs, workerId: 'outage-test', log: () => undefined });
    expect(drained.completed).toBe(1);
    expect((await readFile(path.join(dir, 'sources', `${user}/${sha256(first)}`))).equals(first)).toBe(true);
    expect(await metric('upload_queue_payload_bytes')).toBe(0);
    const third = randomBytes(4000);
    expect((await ingestSource(pool, { userId: user, content: third, mimeType: 'application/octet-stream' }, { storage: down })).status)
      .toBe('pending_retry');
  });
});
