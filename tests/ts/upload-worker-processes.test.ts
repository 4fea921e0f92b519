import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runCli, type Throwaway } from './helpers/db.js';
import { StorageStandIn } from './helpers/storage-standin.js';
import { enqueueJobs, jobStatus, makeDue, migratedCluster, spawnWorker, waitFor, workerSummary } from './helpers/upload.js';

// Worker processes (`node dist/cli.js worker`) against a cluster of their own and a local stand-in of the
// Supabase Storage upload endpoint, which counts every write per object key.
let db: Throwaway;
let pool: pg.Pool;
const standIn = new StorageStandIn();
let env: Record<string, string>;

beforeAll(async () => {
  db = await migratedCluster();
  pool = new pg.Pool({ connectionString: db.url, max: 4 });
  await standIn.start();
  env = {
    DATABASE_URL: db.url,
    STORAGE_BACKEND: 'supabase',
    SUPABASE_URL: standIn.url,
    SUPABASE_SERVICE_ROLE_KEY: standIn.serviceKey,
    WORKER_POLL_INTERVAL_MS: '200',
  };
});
afterAll(async () => {
  await standIn.stop();
  await pool?.end();
  await db?.destroy();
});
beforeEach(async () => {
  await pool.query('DELETE FROM public.upload_queue');
  standIn.behave = () => ({});
  standIn.received.clear();
  standIn.stored.clear();
});

describe('upload worker processes', () => {
  it('4 worker processes drain 500 jobs: each completed exactly once, each object written once', async () => {
    const c = await pool.connect();
    const jobs = await enqueueJobs(c, 500).finally(() => c.release());
    const workers = [1, 2, 3, 4].map((i) => spawnWorker(['--once', '--concurrency', '8', '--worker-id', `w${i}`], env));
    const exits = await Promise.all(workers.map((w) => w.exited));
    expect(exits.map((e) => e.code)).toEqual([0, 0, 0, 0]);
    const summaries = workers.map((w) => workerSummary(w.output));
    expect(summaries.reduce((n, s) => n + s.completed!, 0)).toBe(500);
    expect(summaries.reduce((n, s) => n + s.claimed!, 0)).toBe(500);
    expect(await jobStatus(pool)).toEqual({ completed: 500 });
    for (const j of jobs) {
      expect(standIn.stored.get(`sources/${j.key}`), j.key).toBe(1);
      expect(standIn.objects.get(`sources/${j.key}`)!.body.equals(j.content)).toBe(true);
    }
    expect(standIn.storedCount).toBe(500);
    const { rows } = await pool.query<{ n: number }>('SELECT count(DISTINCT locked_by)::int AS n FROM public.upload_queue');
    expect(rows[0]!.n).toBeGreaterThanOrEqual(2);
  });

  it('a worker killed with SIGKILL mid-upload: another worker finishes the job after the lease expires', async () => {
    const c = await pool.connect();
    const [job] = await enqueueJobs(c, 1, undefined, 256 * 1024).finally(() => c.release());
    const key = `sources/${job!.key}`;
    let first = true;
    standIn.behave = () => (first ? ((first = false), { delayMs: 60_000 }) : {});
    const a = spawnWorker(['--worker-id', 'doomed'], { ...env, WORKER_LEASE_SECONDS: '2' });
    await waitFor('the slow upload to start', async () => standIn.received.get(key) === 1);
    a.child.kill('SIGKILL');
    expect((await a.exited).signal).toBe('SIGKILL');
    await waitFor(
      'the lease to expire',
      async () => (await pool.query('SELECT locked_until < now() AS expired FROM public.upload_queue')).rows[0].expired as boolean,
      10_000,
    );
    const processed = (await pool.query('SELECT public.process_upload_queue() AS r')).rows[0].r;
    expect(processed.rescued).toBe(1);
    await makeDue(pool);
    const b = spawnWorker(['--once', '--worker-id', 'rescuer'], env);
    expect((await b.exited).code).toBe(0);
    expect(workerSummary(b.output)).toMatchObject({ claimed: 1, completed: 1 });
    const { rows } = await pool.query('SELECT status, retry_count, locked_by FROM public.upload_queue');
    expect(rows).toEqual([{ status: 'completed', retry_count: 1, locked_by: 'rescuer' }]);
    expect(standIn.received.get(key)).toBe(2);
    expect(standIn.stored.get(key)).toBe(1);
    expect(standIn.objects.get(key)!.body.equals(job!.content)).toBe(true);
  });

  it('SIGTERM: stops claiming, finishes what it can within the grace period, fails the rest back, exits 0', async () => {
    const c = await pool.connect();
    const [quick, stuck] = await enqueueJobs(c, 2).finally(() => c.release());
    standIn.behave = (r) => (r.path === quick!.key ? { delayMs: 400 } : { delayMs: 60_000 });
    const w = spawnWorker(['--concurrency', '2', '--worker-id', 'term'], { ...env, SHUTDOWN_GRACE_MS: '1500' });
    await waitFor('both uploads to start', async () => standIn.requests.filter((r) => r.path === quick!.key || r.path === stuck!.key).length >= 2);
    const t0 = Date.now();
    w.child.kill('SIGTERM');
    const exit = await w.exited;
    expect(exit.code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(workerSummary(w.output)).toMatchObject({ completed: 1, released: 1 });
    const { rows } = await pool.query(
      `SELECT q.source_id, q.status, q.retry_count, q.error_message, s.storage_status
         FROM public.upload_queue q JOIN public.sources s ON s.id = q.source_id ORDER BY q.status`,
    );
    expect(rows).toEqual([
      { source_id: quick!.sourceId, status: 'completed', retry_count: 0, error_message: null, storage_status: 'uploaded' },
      expect.objectContaining({ source_id: stuck!.sourceId, status: 'pending', retry_count: 1, storage_status: 'pending' }),
    ]);
    expect(rows[1].error_message).toMatch(/shut down/);
  });

  it('NOTIFY wakes an idle worker long before its next poll; /metrics counts the upload', async () => {
    const w = spawnWorker(['--worker-id', 'idle'], { ...env, WORKER_POLL_INTERVAL_MS: '60000', METRICS_PORT: '0' });
    const metricsUrl = /(http:\/\/\S+\/metrics)/.exec(await w.line(/metrics: http/))![1]!;
    await w.line(/listening on upload_queue/);
    await new Promise((r) => setTimeout(r, 300)); // past the claim made on start-up: now idle until the next poll
    const c = await pool.connect();
    const [job] = await enqueueJobs(c, 1).finally(() => c.release());
    const t0 = Date.now();
    await pool.query('SELECT public.process_upload_queue()'); // due work → NOTIFY upload_queue
    await waitFor('the job to complete', async () => standIn.stored.get(`sources/${job!.key}`) === 1, 10_000, 10);
    const latency = Date.now() - t0;
    expect(latency).toBeLessThan(3000);
    const text = await waitFor('the upload in /metrics', async () => {
      const t = await (await fetch(metricsUrl)).text();
      return /^neotoma_worker_uploads_succeeded_total 1$/m.test(t) && t;
    }, 5000);
    expect(text).toMatch(/^neotoma_worker_upload_duration_seconds_count\{outcome="stored"\} 1$/m);
    w.child.kill('SIGTERM');
    expect((await w.exited).code).toBe(0);
    expect(await jobStatus(pool)).toEqual({ completed: 1 });
  });

  it('worker --once with STORAGE_BACKEND=fs stores files; bad options exit 2 with a message', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'neotoma-cli-fs-'));
    try {
      const c = await pool.connect();
      const jobs = await enqueueJobs(c, 3).finally(() => c.release());
      const r = await runCli(['worker', '--once'], { DATABASE_URL: db.url, STORAGE_BACKEND: 'fs', STORAGE_FS_ROOT: dir });
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(/completed=3/);
      for (const j of jobs) expect((await readFile(path.join(dir, 'sources', j.key))).equals(j.content)).toBe(true);
      const bad = await runCli(['worker', '--concurrency', '0'], { DATABASE_URL: db.url });
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/option '--concurrency <n>' argument '0' is invalid\. expected a whole number of at least 1/);
      const badEnv = await runCli(['worker', '--once'], { DATABASE_URL: db.url, WORKER_LEASE_SECONDS: 'soon' });
      expect(badEnv.code).toBe(2);
      expect(badEnv.stderr).toMatch(/WORKER_LEASE_SECONDS/);
      await pool.query('DROP DATABASE IF EXISTS not_migrated');
      await pool.query('CREATE DATABASE not_migrated');
      const empty = await runCli(['worker', '--once'], { DATABASE_URL: db.url.replace(/\/[^/?]+(\?|$)/, '/not_migrated$1') });
      expect(empty.code).toBe(2);
      expect(empty.stderr).toMatch(/claim_upload_jobs.*does not exist.*migrate up/s);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('worker --once with STORAGE_BACKEND=module stores through the adapter module (here the fault-injecting test double)', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'neotoma-cli-module-'));
    try {
      const c = await pool.connect();
      const jobs = await enqueueJobs(c, 2).finally(() => c.release());
      const logFile = path.join(dir, 'writes.log');
      const moduleEnv = {
        DATABASE_URL: db.url, STORAGE_FS_ROOT: dir, METRICS_PORT: 'off',
        STORAGE_BACKEND: 'module', STORAGE_MODULE: fileURLToPath(new URL('./helpers/faulty-storage.mjs', import.meta.url)),
      };
      const failing = await runCli(['worker', '--once'], { ...moduleEnv, STORAGE_FAULTS: JSON.stringify({ inner: 'fs', error5xx: 1, logFile }) });
      expect(failing.code, failing.stderr).toBe(0);
      expect(failing.stdout).toMatch(/started \(faulty\(fs\) storage/);
      expect(failing.stdout).toMatch(/completed=0 retried=2/);
      await makeDue(pool);
      const healthy = await runCli(['worker', '--once'], { ...moduleEnv, STORAGE_FAULTS: JSON.stringify({ inner: 'fs', logFile }) });
      expect(healthy.code, healthy.stderr).toBe(0);
      expect(healthy.stdout).toMatch(/completed=2/);
      for (const j of jobs) expect((await readFile(path.join(dir, 'sources', j.key))).equals(j.content)).toBe(true);
      const writes = (await readFile(logFile, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { outcome: string; pid: number });
      expect(writes.map((w) => w.outcome)).toEqual(['error5xx', 'error5xx', 'ok', 'ok']);
      expect(writes.every((w) => w.pid !== process.pid)).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
