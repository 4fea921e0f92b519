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
