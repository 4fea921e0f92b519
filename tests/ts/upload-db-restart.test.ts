import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Throwaway } from './helpers/db.js';
import { StorageStandIn } from './helpers/storage-standin.js';
import { enqueueJobs, jobStatus, migratedCluster, spawnWorker, waitFor } from './helpers/upload.js';

let db: Throwaway;
const standIn = new StorageStandIn();

beforeAll(async () => {
  db = await migratedCluster();
  await standIn.start();
});
afterAll(async () => {
  await standIn.stop();
  await db?.destroy();
});

describe('database restarted while a worker runs', () => {
  it('the worker reconnects (claims and LISTEN) and drains the queue', async () => {
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    const jobs = await enqueueJobs(c, 30);
    await c.end();
    standIn.behave = () => ({ delayMs: 100 });
    const w = spawnWorker(['--concurrency', '2', '--worker-id', 'survivor'], {
      DATABASE_URL: db.url,
      STORAGE_BACKEND: 'supabase',
      SUPABASE_URL: standIn.url,
      SUPABASE_SERVICE_ROLE_KEY: standIn.serviceKey,
      WORKER_POLL_INTERVAL_MS: '200',
      WORKER_LEASE_SECONDS: '20',
    });
    try {
      await w.line(/listening on upload_queue/);
      await waitFor('a few uploads', async () => standIn.storedCount >= 4);
      await db.cluster.stop();
      await w.line(/cannot claim|listener:/, 10_000);
      await db.cluster.start(); // same port
      await w.line(/listening on upload_queue again/, 20_000);
      const c2 = new pg.Client({ connectionString: db.url });
      await c2.connect();
      try {
        await waitFor('all 30 jobs completed', async () => (await jobStatus(c2)).completed === 30, 30_000, 100);
        expect(await jobStatus(c2)).toEqual({ completed: 30 });
      } finally {
        await c2.end();
      }
      for (const j of jobs) expect(standIn.objects.get(`sources/${j.key}`)!.body.equals(j.content)).toBe(true);
      w.child.kill('SIGTERM');
      expect((await w.exited).code).toBe(0);
    } finally {
      w.child.kill('SIGKILL');
    }
  });
});
