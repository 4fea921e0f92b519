// Honest health: /healthz (UploadWorker.health()) turns 503 with the reason when the worker cannot claim or its
// notification connection stays down, and shows the age of the last claim; a fatal error ends a long-running
// worker at once with one paragraph and a non-zero exit.
import os from 'node:os';
import path from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsStorage } from '../../src/storage/index.js';
import { UploadWorker } from '../../src/worker/worker.js';
import { throwawayCluster, type Throwaway } from './helpers/db.js';
import { startPgbouncer } from './helpers/pgbouncer.js';
import { migratedCluster, spawnWorker, waitFor } from './helpers/upload.js';

describe('worker health', () => {
  let db: Throwaway;
  let dir: string;
  beforeAll(async () => {
    db = await migratedCluster();
    dir = await mkdtemp(path.join(os.tmpdir(), 'neotoma-health-'));
  }, 120_000);
  afterAll(async () => {
    await db?.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it('is healthy while claiming and listening, then says why not once the database is out of reach', async () => {
    const pooler = await startPgbouncer(db.url, 'session', 8);
    const worker = new UploadWorker({
      databaseUrl: pooler.url, storage: new FsStorage({ root: dir, durable: false }), pollIntervalMs: 100, log: () => undefined,
    });
    const running = worker.run();
    try {
      await waitFor('listening and claiming', async () => {
        const h = worker.health();
        return h.notifications === 'listening' && h.last_claim_age_seconds !== null ? h : undefined;
      });
      expect(worker.health()).toMatchObject({ healthy: true, reasons: [], consecutive_claim_failures: 0 });
      await pooler.stop(); // the database is out of reach from here on
      const down = await waitFor('three failed claims', async () => {
        const h = worker.health();
        return h.consecutive_claim_failures >= 3 ? h : undefined;
      }, 30_000);
      expect(down.healthy).toBe(false);
      expect(down.reasons.join(' ')).toMatch(/cannot claim upload jobs: \d+ attempts failed in a row/);
      expect(down.last_error).not.toBeNull();
      const later = worker.health(Date.now() + 90_000);
      expect(later.reasons.join(' ')).toMatch(/the notification connection has been down for \d+ s/);
      expect(later.last_claim_age_seconds).toBeGreaterThan(60);
    } finally {
      worker.stop();
      await running.catch(() => undefined);
    }
  }, 60_000);
});

describe('/healthz of a worker process', () => {
  let db: Throwaway;
  let dir: string;
  beforeAll(async () => {
    db = await migratedCluster();
    dir = await mkdtemp(path.join(os.tmpdir(), 'neotoma-health-'));
  }, 120_000);
  afterAll(async () => {
    await db?.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it('200 with the age of the last claim, then 503 naming the claim failures; SIGINT still ends it at once', async () => {
    const pooler = await startPgbouncer(db.url, 'session', 8);
    const w = spawnWorker([], {
      DATABASE_URL: pooler.url, STORAGE_BACKEND: 'fs', STORAGE_FS_ROOT: dir, WORKER_POLL_INTERVAL_MS: '100', METRICS_PORT: '0',
    });
    try {
      const base = /(http:\/\/127\.0\.0\.1:\d+)/.exec(await w.line(/metrics: http:\/\/127\.0\.0\.1:\d+\/metrics/))![1]!;
      await w.line(/listening on upload_queue/);
      type Body = { status: string; reasons: string[]; worker: { healthy: boolean; last_claim_age_seconds: number | null } };
      const ok = await waitFor('a claim answered', async () => {
        const r = await fetch(`${base}/healthz`);
        const body = (await r.json()) as Body;
        return body.worker.last_claim_age_seconds !== null ? { code: r.status, body } : undefined;
      });
      expect(ok.body.worker).toMatchObject({ healthy: true });
      expect(ok.body.worker.last_claim_age_seconds).toBeLessThan(5);
      await pooler.stop(); // the database is out of reach from here on
      const down = await waitFor('503 naming the worker', async () => {
        const r = await fetch(`${base}/healthz`);
        const body = (await r.json()) as Body;
        return r.status === 503 && body.reasons.some((x) => /^worker: cannot claim upload jobs/.test(x)) ? body : undefined;
      }, 30_000, 200);
      expect(down.status).toBe('unhealthy');
      expect(down.worker.healthy).toBe(false);
      expect(down.worker.last_claim_age_seconds).not.toBeNull();
      const t0 = Date.now();
      w.child.kill('SIGINT');
      const exit = await Promise.race([w.exited, new Promise<null>((r) => setTimeout(() => r(null), 15_000))]);
      if (exit === null) w.child.kill('SIGKILL');
      expect(exit, w.output.join('\n')).not.toBeNull();
      expect(Date.now() - t0).toBeLessThan(15_000);
    } finally {
      w.child.kill('SIGKILL');
      await pooler.stop();
    }
  }, 90_000);
});

describe('a fatal error ends a long-running worker', () => {
  let bare: Throwaway;
  beforeAll(async () => {
    bare = await throwawayCluster(); // never migrated
  }, 120_000);
  afterAll(async () => {
    await bare?.destroy();
  });

  it('on a database that is not migrated: one paragraph, exit 2, within seconds', async () => {
    // with /metrics served, as a long-running worker is by default
    const w = spawnWorker([], { DATABASE_URL: bare.url, STORAGE_BACKEND: 'fs', STORAGE_FS_ROOT: path.join(bare.dir, 's'), METRICS_PORT: '0' });
    const t0 = Date.now();
    const exit = await Promise.race([w.exited, new Promise<null>((r) => setTimeout(() => r(null), 20_000))]);
    if (exit === null) w.child.kill('SIGKILL');
    expect(exit, w.output.join('\n')).toEqual({ code: 2, signal: null });
    expect(Date.now() - t0).toBeLessThan(20_000);
    expect(w.output.join('\n')).toMatch(/neotoma-ops: cannot claim upload jobs: .*Run "neotoma-ops migrate up"/);
    expect(w.output.join('\n')).not.toMatch(/^\s+at /m);
  }, 40_000);
});
