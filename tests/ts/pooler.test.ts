// Every command through a real pgbouncer (Debian package), as Supabase's pooler offers it: in transaction mode
// (no session state kept: no named prepared statements, no LISTEN, no session advisory locks) and in session mode.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { client, runCli, throwawayCluster, type Throwaway } from './helpers/db.js';
import { startPgbouncer, type Pgbouncer } from './helpers/pgbouncer.js';
import { enqueueJobs, jobStatus, migratedCluster, spawnWorker, waitFor, workerSummary } from './helpers/upload.js';

/** A migrated throwaway cluster, a pgbouncer in front of it, a direct client and a storage folder. */
async function pooledDatabase(mode: 'session' | 'transaction', poolSize: number) {
  const db = await migratedCluster();
  const pooler = await startPgbouncer(db.url, mode, poolSize);
  const c = await client(db.url);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'neotoma-pooler-'));
  return { db, pooler, c, dir };
}

describe('through pgbouncer in transaction mode', () => {
  let db: Throwaway;
  let pooler: Pgbouncer;
  let c: pg.Client;
  let dir: string;

  beforeAll(async () => {
    ({ db, pooler, c, dir } = await pooledDatabase('transaction', 2));
  }, 120_000);

  afterAll(() => Promise.all([c?.end(), pooler?.stop()]).then(() => db?.destroy()).then(() => rm(dir, { recursive: true, force: true })));

  it('worker --once stores every due upload over several claim batches', async () => {
    await c.query('DELETE FROM public.upload_queue');
    const jobs = await enqueueJobs(c, 30);
    const r = await runCli(['worker', '--once', '--concurrency', '3'], {
      DATABASE_URL: pooler.url, STORAGE_BACKEND: 'fs', STORAGE_FS_ROOT: dir, METRICS_PORT: 'off',
    });
    expect(r.stderr + r.stdout).not.toMatch(/prepared statement/);
    expect(r.code).toBe(0);
    expect(await jobStatus(c)).toEqual({ completed: 30 });
    const one = jobs[7]!;
    expect((await readFile(path.join(dir, 'sources', one.key))).equals(one.content)).toBe(true);
  });

  it('a long-running worker keeps storing uploads by polling, says notifications cannot arrive, and stops on SIGTERM', async () => {
    await c.query('DELETE FROM public.upload_queue');
    const w = spawnWorker(['--concurrency', '2'], {
      DATABASE_URL: pooler.url, STORAGE_BACKEND: 'fs', STORAGE_FS_ROOT: dir, WORKER_POLL_INTERVAL_MS: '300', METRICS_PORT: '0',
    });
    try {
      const metricsLine = await w.line(/metrics: http:\/\/127\.0\.0\.1:\d+\/metrics/);
      const base = /(http:\/\/127\.0\.0\.1:\d+)/.exec(metricsLine)![1]!;
      await w.line(/notifications do not arrive/, 20_000);
      for (let round = 0; round < 3; round++) {
        await enqueueJobs(c, 5);
        await waitFor('every job stored', async () => (await jobStatus(c)).completed === 5 * (round + 1), 15_000);
      }
      const health = await fetch(`${base}/healthz`);
      const body = (await health.json()) as { status: string; worker: { notifications: string; last_claim_age_seconds: number | null } };
      expect(body.worker.notifications).toMatch(/polling/);
      expect(body.worker.last_claim_age_seconds).not.toBeNull();
    } finally {
      w.child.kill('SIGTERM');
    }
    const exit = await w.exited;
    expect(exit.code).toBe(0);
    expect(workerSummary(w.output).completed).toBe(15);
  });

  it('status, usage, plan, requeue and demo work through it', async () => {
    await c.query('DELETE FROM public.upload_queue');
    const user = randomUUID();
    const [job] = await enqueueJobs(c, 1, user);
    const claimed = await c.query<{ job_id: string; lease_token: string }>(`SELECT job_id, lease_token FROM public.claim_upload_jobs('test', 1)`);
    expect(claimed.rows.map((r) => r.job_id)).toEqual([job!.jobId]);
    await c.query('SELECT public.fail_upload_job($1, $2, $3, false)', [job!.jobId, claimed.rows[0]!.lease_token, 'storage said no']);
    const env = { DATABASE_URL: pooler.url };
    const status = await runCli(['status', '--json'], env);
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout).upload_queue).toBeDefined();
    const plan = await runCli(['plan', user, 'pro'], env);
    expect(plan.code, plan.stderr).toBe(0);
    const usage = await runCli(['usage', user, '--json'], env);
    expect(usage.code, usage.stderr).toBe(0);
    expect(JSON.parse(usage.stdout).plan).toBe('pro');
    const requeue = await runCli(['requeue', '--all-failed'], env);
    expect(requeue.code, requeue.stderr).toBe(0);
    expect(await jobStatus(c)).toEqual({ pending: 1 });
    const demo = await runCli(['demo', '--yes'], { ...env, STORAGE_BACKEND: 'fs', STORAGE_FS_ROOT: dir });
    expect(demo.stderr + demo.stdout).not.toMatch(/prepared statement/);
    expect(demo.code, demo.stderr).toBe(0);
  });

  it('doctor answers through it', async () => {
    const r = await runCli(['doctor', '--json'], { DATABASE_URL: pooler.url });
    expect(JSON.parse(r.stdout).checks.find((k: { check: string }) => k.check === 'migrations').status).toBe('ok');
  });
});

describe('migrate through pgbouncer in transaction mode', () => {
  let db: Throwaway;
  let pooler: Pgbouncer;

  beforeAll(async () => {
    db = await throwawayCluster();
    pooler = await startPgbouncer(db.url, 'transaction', 2);
  }, 120_000);

  afterAll(async () => {
    await pooler?.stop();
    await db?.destroy();
  });

  it('two concurrent runs both finish, apply each migration once and leave no lock behind', async () => {
    const [a, b] = await Promise.all([
      runCli(['migrate', 'up'], { DATABASE_URL: pooler.url }),
      runCli(['migrate', 'up'], { DATABASE_URL: pooler.url }),
    ]);
    expect([a.code, b.code], `${a.stderr}\n${b.stderr}`).toEqual([0, 0]);
    const c = await client(db.url);
    try {
      const applied = await c.query<{ name: string; n: number }>(
        'SELECT name, count(*)::int AS n FROM neotoma_ops.pgmigrations GROUP BY name HAVING count(*) > 1');
      expect(applied.rows).toEqual([]);
      const locks = await c.query(`SELECT pid FROM pg_locks WHERE locktype = 'advisory'`);
      expect(locks.rows).toEqual([]);
    } finally {
      await c.end();
    }
    // a direct run afterwards is not kept waiting by anything the pooled runs left
    const t0 = Date.now();
    const direct = await runCli(['migrate', 'up'], { DATABASE_URL: db.url });
    expect(direct.code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(direct.stdout).toMatch(/Nothing to apply/);
  });
});

describe('through pgbouncer in session mode', () => {
  let db: Throwaway;
  let pooler: Pgbouncer;
  let c: pg.Client;
  let dir: string;

  beforeAll(async () => {
    ({ db, pooler, c, dir } = await pooledDatabase('session', 8));
  }, 120_000);

  afterAll(() => Promise.all([c?.end(), pooler?.stop()]).then(() => db?.destroy()).then(() => rm(dir, { recursive: true, force: true })));

  it('the worker LISTENs: a new upload is stored long before the next poll', async () => {
    const w = spawnWorker([], { DATABASE_URL: pooler.url, STORAGE_BACKEND: 'fs', STORAGE_FS_ROOT: dir, WORKER_POLL_INTERVAL_MS: '60000' });
    try {
      await w.line(/listening on upload_queue/);
      await enqueueJobs(c, 3);
      // enqueue schedules the first retry 30 s ahead; making the jobs due says so, as process_upload_queue() does
      await c.query(`NOTIFY upload_queue, '{"event":"due"}'`);
      await waitFor('stored by notification', async () => (await jobStatus(c)).completed === 3, 10_000);
    } finally {
      w.child.kill('SIGTERM');
    }
    expect((await w.exited).code).toBe(0);
  });
});
