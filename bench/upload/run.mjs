// Upload queue benchmark (see docs/benchmarks.md, "Upload queue").
//   npm run build && node bench/upload/run.mjs [--jobs N] [--workers N] [--samples N] [--only throughput|ours]
//   (--only throughput: skip the latency and RSS parts; --only ours: throughput of neotoma-ops alone)
// Creates a throwaway PostgreSQL 15 cluster (fsync off; PG_BIN=<bin folder> for another server) unless
// DATABASE_URL is set, and measures on it:
//   1. claim+complete throughput with a no-op storage adapter, W concurrent workers, against pg-boss 10.x and
//      graphile-worker 0.17.x (default settings, no local-queue batching) on the same database;
//   2. due → stored latency of one idle worker woken by NOTIFY (poll interval 60 s, so only NOTIFY can wake it);
//   3. peak RSS of `neotoma-ops worker --once` storing one 100 MiB payload to the fs backend.
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import PgBoss from 'pg-boss';
import { makeWorkerUtils, run as runGraphile } from 'graphile-worker';

const { root, sha, sleep, database, enqueue, dueToStoredLatency } = await import('../lib/upload-fixtures.mjs');
const { migrateUp } = await import(path.join(root, 'dist', 'migrate.js'));
const { UploadWorker } = await import(path.join(root, 'dist', 'worker', 'worker.js'));

const { values } = parseArgs({
  options: { jobs: { type: 'string', default: '5000' }, workers: { type: 'string', default: '8' }, samples: { type: 'string', default: '200' }, only: { type: 'string' } },
});
const JOBS = Number(values.jobs);
const WORKERS = Number(values.workers);
const SAMPLES = Number(values.samples);
const ONLY = values.only;
if (ONLY !== undefined && ONLY !== 'throughput' && ONLY !== 'ours') throw new Error('--only takes throughput or ours');
const quiet = () => undefined;

const noop = { backend: 'noop', put: async () => undefined };

/** `processes` UploadWorker instances with `concurrency` slots each (processes × concurrency = WORKERS). */
async function oursThroughput(url, c, processes, concurrency) {
  await c.query('DELETE FROM public.upload_queue');
  await enqueue(c, JOBS);
  await c.query('VACUUM ANALYZE public.upload_queue, public.upload_queue_payloads, public.sources, neotoma_ops.upload_queue_counters');
  const t0 = performance.now();
  const workers = Array.from({ length: processes }, (_, i) =>
    new UploadWorker({ databaseUrl: url, storage: noop, concurrency, once: true, leaseSeconds: 60, workerId: `bench-${i}`, log: quiet }),
  );
  const stats = await Promise.all(workers.map((w) => w.run()));
  const ms = performance.now() - t0;
  const completed = stats.reduce((n, s) => n + s.completed, 0);
  if (completed !== JOBS) throw new Error(`neotoma-ops completed ${completed} of ${JOBS}`);
  return { ms, perSec: (JOBS / ms) * 1000 };
}

/** pg-boss 10 waits its polling interval (≥ 0.5 s) after every fetch, so batchSize 1 runs on fewer jobs. */
async function pgBossThroughput(url, c, batchSize, jobs = JOBS) {
  await c.query('DROP SCHEMA IF EXISTS bench_pgboss CASCADE');
  const boss = new PgBoss({ connectionString: url, schema: 'bench_pgboss', max: WORKERS + 2, supervise: false, schedule: false });
  boss.on('error', (e) => console.error('pg-boss:', e.message));
  await boss.start();
  await boss.createQueue('bench');
  for (let i = 0; i < jobs; i += 1000) {
    await boss.insert(Array.from({ length: Math.min(1000, jobs - i) }, (_, j) => ({ name: 'bench', data: { i: i + j } })));
  }
  await c.query('VACUUM ANALYZE bench_pgboss.job');
  let handled = 0;
  const t0 = performance.now();
  for (let i = 0; i < WORKERS; i++) {
    await boss.work('bench', { batchSize, pollingIntervalSeconds: 0.5 }, async (batch) => { handled += batch.length; });
  }
  for (;;) {
    const { rows } = await c.query(`SELECT count(*)::int AS n FROM bench_pgboss.job WHERE name = 'bench' AND state = 'completed'`);
    if (rows[0].n >= jobs) break;
    await sleep(10);
  }
  const ms = performance.now() - t0;
  await boss.stop({ graceful: true, wait: true, timeout: 5000 });
  if (handled !== jobs) throw new Error(`pg-boss handled ${handled} of ${jobs}`);
  return { ms, perSec: (jobs / ms) * 1000 };
}

/** `runners` graphile-worker runners with WORKERS / runners concurrency each (1 runner: concurrency WORKERS). */
async function graphileThroughput(url, c, runners = 1) {
  const utils = await makeWorkerUtils({ connectionString: url });
  await utils.migrate();
  for (let i = 0; i < JOBS; i += 1000) {
    await utils.addJobs(Array.from({ length: Math.min(1000, JOBS - i) }, (_, j) => ({ identifier: 'bench', payload: { i: i + j } })));
  }
  await c.query('VACUUM ANALYZE graphile_worker._private_jobs');
  let handled = 0;
  const t0 = performance.now();
  const { Logger } = await import('graphile-worker');
  const started = await Promise.all(
    Array.from({ length: runners }, () =>
      runGraphile({
        connectionString: url,
        concurrency: WORKERS / runners,
        noHandleSignals: true,
        pollInterval: 500,
        logger: new Logger(() => quiet),
        taskList: { bench: async () => { handled++; } },
      }),
    ),
  );
  for (;;) {
    const { rows } = await c.query('SELECT count(*)::int AS n FROM graphile_worker._private_jobs');
    if (rows[0].n === 0) break;
    await sleep(10);
  }
  const ms = performance.now() - t0;
  await Promise.all(started.map((r) => r.stop()));
  await utils.release();
  if (handled !== JOBS) throw new Error(`graphile-worker handled ${handled} of ${JOBS}`);
  return { ms, perSec: (JOBS / ms) * 1000 };
}

/** One idle worker (poll 60 s, so only NOTIFY can wake it). */
function latency(url, c) {
  return dueToStoredLatency(c, SAMPLES, (storage, log) =>
    new UploadWorker({ databaseUrl: url, storage, concurrency: 4, pollIntervalMs: 60_000, leaseSeconds: 60, workerId: 'latency', log }),
  'listening on upload_queue');
}

async function peakRss(url, c) {
  await c.query('DELETE FROM public.upload_queue');
  const b = randomBytes(100 << 20);
  const h = sha(b);
  const u = randomUUID();
  const { rows } = await c.query(
    `INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size, storage_status)
     VALUES ($1::uuid, $2, 'application/octet-stream', $1::text || '/' || $2, $3, 'pending') RETURNING id`,
    [u, h, b.length],
  );
  await c.query('SELECT public.enqueue_upload($1, $2)', [rows[0].id, b]);
  await c.query(`UPDATE public.upload_queue SET next_retry_at = now()`);
  const dir = await mkdtemp(path.join(os.tmpdir(), 'neotoma-bench-fs-'));
  const out = await new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, ['-r', path.join(root, 'bench', 'upload', 'report-rss.cjs'), path.join(root, 'dist', 'cli.js'), 'worker', '--once'], {
      env: { ...process.env, DATABASE_URL: url, STORAGE_BACKEND: 'fs', STORAGE_FS_ROOT: dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let text = '';
    child.stdout.on('data', (d) => (text += d));
    child.stderr.on('data', (d) => (text += d));
    child.on('exit', (code) => (code === 0 ? resolve({ text, ms: performance.now() - t0 }) : reject(new Error(`worker exited ${code}: ${text}`))));
  });
  await rm(dir, { recursive: true, force: true });
  if (!/completed=1/.test(out.text)) throw new Error(`100 MiB upload not completed: ${out.text}`);
  return { maxRssMiB: Number(/maxrss_kib=(\d+)/.exec(out.text)[1]) / 1024, ms: out.ms };
}

async function timed(fn) {
  const cpu0 = process.cpuUsage();
  const r = await fn();
  const cpu = process.cpuUsage(cpu0);
  return { ...r, cpuMs: (cpu.user + cpu.system) / 1000 };
}

const db = await database();
try {
  await migrateUp(db.url, { log: quiet });
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  const { rows } = await c.query(`SELECT current_setting('server_version') AS v`);
  console.log(`PostgreSQL ${rows[0].v}, node ${process.version}, ${os.cpus().length} CPUs; ${JOBS} jobs, ${WORKERS} workers`);
  if (ONLY === undefined) {
    const lat = await latency(db.url, c);
    console.log(`due -> stored with NOTIFY (${SAMPLES} samples): p50 ${lat.p50.toFixed(1)} ms, p99 ${lat.p99.toFixed(1)} ms, max ${lat.max.toFixed(1)} ms`);
    const rss = await peakRss(db.url, c);
    console.log(`100 MiB payload: worker peak RSS ${rss.maxRssMiB.toFixed(0)} MiB, process run ${(rss.ms / 1000).toFixed(2)} s`);
  }
  const results = {};
  results[`neotoma-ops, ${WORKERS} workers x 1 slot`] = await timed(() => oursThroughput(db.url, c, WORKERS, 1));
  results[`neotoma-ops, 1 worker x ${WORKERS} slots`] = await timed(() => oursThroughput(db.url, c, 1, WORKERS));
  if (ONLY !== 'ours') {
    if (ONLY === undefined) {
      results[`pg-boss 10.4.2, ${WORKERS} workers, batchSize 1`] = await timed(() => pgBossThroughput(db.url, c, 1, Math.min(JOBS, 400)));
    }
    results[`pg-boss 10.4.2, ${WORKERS} workers, batchSize 50`] = await timed(() => pgBossThroughput(db.url, c, 50));
    results[`graphile-worker 0.17.3, concurrency ${WORKERS}`] = await timed(() => graphileThroughput(db.url, c));
    results[`graphile-worker 0.17.3, ${WORKERS} runners x 1`] = await timed(() => graphileThroughput(db.url, c, WORKERS));
  }
  for (const [k, r] of Object.entries(results)) {
    console.log(`${k.padEnd(44)} ${r.perSec.toFixed(0).padStart(6)} jobs/s  (${(r.ms / 1000).toFixed(2)} s, node CPU ${(r.cpuMs / r.ms * 100).toFixed(0)} % of one core)`);
  }
  await c.end();
} finally {
  await db.destroy();
}
