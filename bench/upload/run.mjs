// Upload queue benchmark (see docs/benchmarks.md, "Upload queue").
//   npm run build && node bench/upload/run.mjs [--jobs N] [--workers N] [--samples N] [--only throughput|ours]
//       [--rounds N] [--pgboss-batch 1,10,50,100,250] [--pgboss-interval 0.5,1,2] [--pgboss-seconds 12]
//       [--pgboss-min-fetches 3]
//   --only throughput: skip the latency and RSS parts; --only ours: throughput of neotoma-ops alone.
//   --rounds N (default 1): every throughput row N times, interleaved (round 1: all rows, round 2: all rows, ...),
//     then a table of the medians per row and the ratios between systems computed from those medians.
//   --pgboss-batch / --pgboss-interval: the pg-boss settings swept (batchSize × pollingIntervalSeconds; 0.5 s is
//     pg-boss 10's minimum interval). The sweep runs once, before round 1, whenever pg-boss is measured (not with
//     --only ours); give one value to each to skip it. pg-boss 10 waits its polling interval after every fetch, so
//     one point cannot go faster than workers × batchSize jobs per interval; each point runs on at most
//     --pgboss-seconds (default 12) of jobs at that ceiling, a whole number of fetches of every worker (capped at
//     --jobs). Each point prints its fetches per worker and that ceiling: with few fetches (e.g. batchSize 250 on
//     5000 jobs: 2.5) the backlog goes in one or two fetches with at most a wait or two, and the rate exceeds what
//     pg-boss sustains on a longer backlog. So the best point is the fastest of those with at least
//     --pgboss-min-fetches (default 3) fetches per worker (0: the fastest of all; with none qualifying, the fastest
//     of all); for large batchSizes to qualify, raise --jobs. The rows of the rounds use the best point, on the
//     same number of jobs as in the sweep.
// Creates a throwaway PostgreSQL 15 cluster (fsync off; PG_BIN=<bin folder> for another server) unless
// DATABASE_URL is set, and measures on it:
//   1. claim+complete throughput with a no-op handler, W (--workers, default 8) concurrent workers, on the same
//      database: neotoma-ops (W workers × 1 slot, 1 worker × W slots), pg-boss 10.4.2 (W workers, best of the
//      sweep), graphile-worker 0.17.3 (concurrency W; W runners × 1; defaults, no local-queue batching) and
//      PGMQ 1.5.1 (installed as plain SQL from ../shared/vendor beside the repository, PGMQ_SQL=<file> for another copy):
//      W consumers, each its own connection, read 1 → no-op → delete (or archive, which keeps the message in
//      pgmq.a_bench, as our queue keeps its rows), and 1 consumer reading W at a time and deleting each batch with
//      one call. Every row checks that each job was handled exactly once. Each row prints jobs/s, the Node
//      process's CPU and the database server's CPU per job (from /proc, bench/lib/server-cpu.mjs; "n/a" when
//      the server is not local), both over the timed part only (not the enqueue or VACUUM before it). The server's
//      CPU counts all of it: the backends (their start included), autovacuum, checkpointer, walwriter; so a slow row
//      (pg-boss with small batches) carries more of the idle server per job. pg-boss and graphile-worker rows stop
//      the clock when the database shows every job done, polled only once the handlers have seen them all.
//      On the throwaway cluster the pg_cron jobs the migrations schedule are removed first (as in
//      bench/scale/workers.mjs), so that none runs during a row; a DATABASE_URL database is left as it is.
//   2. due → stored latency of one idle worker woken by NOTIFY (poll interval 60 s, so only NOTIFY can wake it);
//   3. peak RSS of `neotoma-ops worker --once` storing one 100 MiB payload to the fs backend.
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import PgBoss from 'pg-boss';
import { makeWorkerUtils, run as runGraphile, Logger } from 'graphile-worker';

const { root, sha, sleep, database, enqueue, dueToStoredLatency } = await import('../lib/upload-fixtures.mjs');
const { serverCpu, perJobText } = await import('../lib/server-cpu.mjs');
const { migrateUp } = await import(path.join(root, 'dist', 'migrate.js'));
const { UploadWorker } = await import(path.join(root, 'dist', 'worker', 'worker.js'));

const { values } = parseArgs({
  options: {
    jobs: { type: 'string', default: '5000' },
    workers: { type: 'string', default: '8' },
    samples: { type: 'string', default: '200' },
    only: { type: 'string' },
    rounds: { type: 'string', default: '1' },
    'pgboss-batch': { type: 'string', default: '1,10,50,100,250' },
    'pgboss-interval': { type: 'string', default: '0.5,1,2' },
    'pgboss-seconds': { type: 'string', default: '12' },
    'pgboss-min-fetches': { type: 'string', default: '3' },
  },
});
const JOBS = Number(values.jobs);
const WORKERS = Number(values.workers);
const SAMPLES = Number(values.samples);
const ROUNDS = Number(values.rounds);
const ONLY = values.only;
const list = (s) => s.split(',').map(Number);
const PGBOSS_BATCH = list(values['pgboss-batch']);
const PGBOSS_INTERVAL = list(values['pgboss-interval']);
const PGBOSS_SECONDS = Number(values['pgboss-seconds']);
const PGBOSS_MIN_FETCHES = Number(values['pgboss-min-fetches']);
if (ONLY !== undefined && ONLY !== 'throughput' && ONLY !== 'ours') throw new Error('--only takes throughput or ours');
if (!(ROUNDS >= 1) || !(JOBS >= 1) || !(WORKERS >= 1)) throw new Error('--rounds, --jobs and --workers must be ≥ 1');
if (PGBOSS_BATCH.some((b) => !Number.isInteger(b) || b < 1)) throw new Error('--pgboss-batch takes whole numbers ≥ 1');
if (PGBOSS_INTERVAL.some((i) => !(i >= 0.5))) throw new Error('--pgboss-interval takes seconds ≥ 0.5 (pg-boss 10 minimum)');
const PGMQ_SQL = process.env.PGMQ_SQL ?? path.resolve(root, '..', 'shared', 'vendor', 'pgmq-1.5.1-c8575e3.sql');
const quiet = () => undefined;

const noop = { backend: 'noop', put: async () => undefined };

/**
 * The timed part of a row: server CPU read, then the clock started (and the Node CPU counter); at the end the clock
 * stopped, then the server CPU read again, so neither reading is inside the timed part.
 */
let readServerCpu = async () => null;
async function startTimer() {
  const db0 = await readServerCpu();
  return { db0, node0: process.cpuUsage(), t0: performance.now() };
}
async function stopTimer(t, jobs) {
  const ms = performance.now() - t.t0;
  const node = process.cpuUsage(t.node0);
  const db1 = await readServerCpu();
  return {
    jobs, ms, perSec: (jobs / ms) * 1000, nodeCpuMs: (node.user + node.system) / 1000,
    dbCpuMs: t.db0 === null || db1 === null ? null : db1 - t.db0,
  };
}
const dbUsPerJob = (r) => (r.dbCpuMs === null ? null : (r.dbCpuMs * 1000) / r.jobs);

/** `processes` UploadWorker instances with `concurrency` slots each (processes × concurrency = WORKERS). */
async function oursThroughput(url, c, processes, concurrency) {
  await c.query('DELETE FROM public.upload_queue');
  await enqueue(c, JOBS);
  await c.query('VACUUM ANALYZE public.upload_queue, public.upload_queue_payloads, public.sources, neotoma_ops.upload_queue_counters');
  const t = await startTimer();
  const workers = Array.from({ length: processes }, (_, i) =>
    new UploadWorker({ databaseUrl: url, storage: noop, concurrency, once: true, leaseSeconds: 60, workerId: `bench-${i}`, log: quiet }),
  );
  const stats = await Promise.all(workers.map((w) => w.run()));
  const r = await stopTimer(t, JOBS);
  const completed = stats.reduce((n, s) => n + s.completed, 0);
  if (completed !== JOBS) throw new Error(`neotoma-ops completed ${completed} of ${JOBS}`);
  const { rows } = await c.query(`SELECT count(*) FILTER (WHERE status <> 'completed')::int AS left, count(*)::int AS n FROM public.upload_queue`);
  if (rows[0].left !== 0 || rows[0].n !== JOBS) throw new Error(`neotoma-ops: ${rows[0].left} of ${rows[0].n} jobs not completed`);
  return r;
}

/**
 * pg-boss 10: WORKERS `work()` workers (one fetch loop each) with `batchSize` and `pollingIntervalSeconds`. A worker
 * waits the polling interval after every fetch, even a full one, less the time the fetch and handler took; it does
 * not await the completion of a batch before its next fetch. The clock stops when the database shows every job
 * completed (polled only once the handlers have seen them all, so that the polling adds little to the server's CPU).
 */
async function pgBossThroughput(url, c, batchSize, interval, jobs) {
  await c.query('DROP SCHEMA IF EXISTS bench_pgboss CASCADE');
  const boss = new PgBoss({ connectionString: url, schema: 'bench_pgboss', max: WORKERS + 2, supervise: false, schedule: false });
  boss.on('error', (e) => console.error('pg-boss:', e.message));
  await boss.start();
  await boss.createQueue('bench');
  for (let i = 0; i < jobs; i += 1000) {
    await boss.insert(Array.from({ length: Math.min(1000, jobs - i) }, (_, j) => ({ name: 'bench', data: { i: i + j } })));
  }
  await c.query('VACUUM ANALYZE bench_pgboss.job');
  const seen = new Set();
  let twice = 0;
  const t = await startTimer();
  for (let i = 0; i < WORKERS; i++) {
    await boss.work('bench', { batchSize, pollingIntervalSeconds: interval }, async (batch) => {
      for (const job of batch) {
        if (seen.has(job.data.i)) twice++;
        seen.add(job.data.i);
      }
    });
  }
  while (seen.size + twice < jobs) await sleep(5);
  for (;;) {
    const { rows } = await c.query(`SELECT count(*)::int AS n FROM bench_pgboss.job WHERE name = 'bench' AND state = 'completed'`);
    if (rows[0].n >= jobs) break;
    await sleep(5);
  }
  const r = await stopTimer(t, jobs);
  await boss.stop({ graceful: true, wait: true, timeout: 5000 });
  if (seen.size !== jobs || twice !== 0) throw new Error(`pg-boss handled ${seen.size} of ${jobs}, ${twice} twice`);
  return r;
}

/** Jobs for one pg-boss point: ≤ PGBOSS_SECONDS at its ceiling (WORKERS × batchSize per interval), whole fetches. */
function pgBossJobs(batchSize, interval) {
  const perFetchRound = WORKERS * batchSize;
  return Math.min(JOBS, perFetchRound * Math.max(1, Math.floor(PGBOSS_SECONDS / interval)));
}

/** `runners` graphile-worker runners with WORKERS / runners concurrency each (1 runner: concurrency WORKERS). */
async function graphileThroughput(url, c, runners = 1) {
  const utils = await makeWorkerUtils({ connectionString: url });
  await utils.migrate();
  for (let i = 0; i < JOBS; i += 1000) {
    await utils.addJobs(Array.from({ length: Math.min(1000, JOBS - i) }, (_, j) => ({ identifier: 'bench', payload: { i: i + j } })));
  }
  await c.query('VACUUM ANALYZE graphile_worker._private_jobs');
  const seen = new Set();
  let twice = 0;
  const t = await startTimer();
  const started = await Promise.all(
    Array.from({ length: runners }, () =>
      runGraphile({
        connectionString: url,
        concurrency: WORKERS / runners,
        noHandleSignals: true,
        pollInterval: 500,
        logger: new Logger(() => quiet),
        taskList: { bench: async (payload) => { if (seen.has(payload.i)) twice++; seen.add(payload.i); } },
      }),
    ),
  );
  // The database is polled only once the handlers have seen every job (graphile-worker deletes a finished job).
  while (seen.size + twice < JOBS) await sleep(5);
  for (;;) {
    const { rows } = await c.query('SELECT count(*)::int AS n FROM graphile_worker._private_jobs');
    if (rows[0].n === 0) break;
    await sleep(5);
  }
  const r = await stopTimer(t, JOBS);
  await Promise.all(started.map((x) => x.stop()));
  await utils.release();
  if (seen.size !== JOBS || twice !== 0) throw new Error(`graphile-worker handled ${seen.size} of ${JOBS}, ${twice} twice`);
  return r;
}

/** PGMQ from scratch (schema pgmq dropped and installed again), queue `bench` filled with JOBS messages {"i": n}. */
async function pgmqFill(c) {
  await c.query('DROP SCHEMA IF EXISTS pgmq CASCADE');
  await c.query(await readFile(PGMQ_SQL, 'utf8'));
  await c.query(`SELECT pgmq.create('bench')`);
  for (let i = 0; i < JOBS; i += 1000) {
    const batch = Array.from({ length: Math.min(1000, JOBS - i) }, (_, j) => JSON.stringify({ i: i + j }));
    await c.query(`SELECT pgmq.send_batch('bench', $1::jsonb[])`, [batch]);
  }
  await c.query('VACUUM ANALYZE pgmq.q_bench, pgmq.a_bench');
}

/** Handled exactly once: every message seen once, and the queue empty (for archive: the archive holds all JOBS). */
async function pgmqCheck(c, seen, twice, finish) {
  const { rows } = await c.query(`SELECT (SELECT count(*)::int FROM pgmq.q_bench) AS queued, (SELECT count(*)::int FROM pgmq.a_bench) AS archived`);
  const want = finish === 'archive' ? JOBS : 0;
  if (seen.size !== JOBS || twice !== 0 || rows[0].queued !== 0 || rows[0].archived !== want) {
    throw new Error(`PGMQ ${finish}: handled ${seen.size} of ${JOBS}, ${twice} twice; ${rows[0].queued} left in the queue, ${rows[0].archived} archived`);
  }
}

/**
 * PGMQ, WORKERS consumers, each its own connection, each looping: read 1 (visibility timeout 30 s) → no-op handler →
 * delete (or archive) that message, until a read returns nothing.
 */
async function pgmqThroughput(url, c, finish) {
  await pgmqFill(c);
  const seen = new Set();
  let twice = 0;
  const t = await startTimer();
  await Promise.all(Array.from({ length: WORKERS }, async () => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    for (;;) {
      const { rows } = await client.query(`SELECT msg_id, message FROM pgmq.read('bench', 30, 1)`);
      if (rows.length === 0) break;
      await noop.put(rows[0]);
      if (seen.has(rows[0].message.i)) twice++;
      seen.add(rows[0].message.i);
      const done = await client.query(`SELECT pgmq.${finish}('bench', $1::bigint) AS ok`, [rows[0].msg_id]);
      if (done.rows[0].ok !== true) throw new Error(`PGMQ ${finish} of ${rows[0].msg_id} found nothing`);
    }
    await client.end();
  }));
  const r = await stopTimer(t, JOBS);
  await pgmqCheck(c, seen, twice, finish);
  return r;
}

/**
 * PGMQ, 1 consumer reading WORKERS messages at a time, handling them concurrently (no-op), then deleting the batch
 * with one pgmq.delete(queue, bigint[]). It uses a pool of 2 connections: the delete of one batch is not awaited
 * before the next read, so one read and one delete can be in flight at once (at most one delete pending), the way
 * our 1 worker × WORKERS slots claims while other slots complete. Stops when a read returns nothing.
 */
async function pgmqBatchThroughput(url, c) {
  await pgmqFill(c);
  const seen = new Set();
  let twice = 0;
  const t = await startTimer();
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  let deleting = Promise.resolve();
  for (;;) {
    const { rows } = await pool.query(`SELECT msg_id, message FROM pgmq.read('bench', 30, $1)`, [WORKERS]);
    if (rows.length === 0) break;
    await Promise.all(rows.map(async (m) => {
      await noop.put(m);
      if (seen.has(m.message.i)) twice++;
      seen.add(m.message.i);
    }));
    await deleting;
    const ids = rows.map((m) => m.msg_id);
    deleting = pool.query(`SELECT pgmq.delete('bench', $1::bigint[]) AS id`, [ids]).then((d) => {
      if (d.rows.length !== ids.length) throw new Error(`PGMQ delete of ${ids.length} deleted ${d.rows.length}`);
    });
  }
  await deleting;
  const r = await stopTimer(t, JOBS);
  await pool.end();
  await pgmqCheck(c, seen, twice, 'delete');
  return r;
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

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const fmtUs = (us) => (us === null ? 'n/a' : `${us.toFixed(0)} µs`);

function rowText(label, r) {
  return `${label.padEnd(52)} ${r.perSec.toFixed(0).padStart(6)} jobs/s  (${r.jobs} jobs, ${(r.ms / 1000).toFixed(2)} s, ` +
    `node CPU ${((r.nodeCpuMs / r.ms) * 100).toFixed(0)} % of one core, DB CPU per job: ${perJobText(0, r.dbCpuMs, r.jobs)})`;
}

/** pg-boss's sweep (once): every batchSize × polling interval, printed; returns the best point by jobs/s. */
async function pgBossSweep(url, c) {
  console.log(`pg-boss 10.4.2 sweep, ${WORKERS} workers (at most ${PGBOSS_SECONDS} s of jobs at each point's ceiling):`);
  const points = [];
  for (const interval of PGBOSS_INTERVAL) {
    for (const batchSize of PGBOSS_BATCH) {
      const r = await pgBossThroughput(url, c, batchSize, interval, pgBossJobs(batchSize, interval));
      const fetches = r.jobs / (WORKERS * batchSize);
      console.log(`  ${rowText(`batchSize ${batchSize}, pollingIntervalSeconds ${interval}`, r)}; ` +
        `${fetches.toFixed(1)} fetches per worker, ceiling ${((WORKERS * batchSize) / interval).toFixed(0)} jobs/s`);
      points.push({ batchSize, interval, fetches, r });
    }
  }
  const fastest = (ps) => ps.reduce((a, b) => (b.r.perSec > a.r.perSec ? b : a));
  const any = fastest(points);
  const steady = points.filter((p) => p.fetches >= PGBOSS_MIN_FETCHES);
  const best = steady.length > 0 ? fastest(steady) : any;
  const text = (p) => `batchSize ${p.batchSize}, pollingIntervalSeconds ${p.interval} (${p.r.perSec.toFixed(0)} jobs/s, ${p.fetches.toFixed(1)} fetches per worker)`;
  console.log(`  best with at least ${PGBOSS_MIN_FETCHES} fetches per worker: ${steady.length > 0 ? text(best) : 'none, so the fastest of all'}`);
  if (any !== best) console.log(`  fastest of all (not used: too few fetches to show a sustained rate): ${text(any)}`);
  return best;
}

const db = await database();
try {
  await migrateUp(db.url, { log: quiet });
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  if (!process.env.DATABASE_URL) await c.query('SELECT cron.unschedule(jobid) FROM cron.job');
  readServerCpu = await serverCpu(c);
  const { rows } = await c.query(`SELECT current_setting('server_version') AS v`);
  const local = (await readServerCpu()) !== null;
  console.log(`PostgreSQL ${rows[0].v}, node ${process.version}, ${os.cpus().length} CPUs, load ${os.loadavg()[0].toFixed(2)}; ` +
    `${JOBS} jobs, ${WORKERS} workers, ${ROUNDS} round(s); DB CPU ${local ? 'from /proc' : 'n/a (server not local)'}`);
  if (ONLY === undefined) {
    const lat = await latency(db.url, c);
    console.log(`due -> stored with NOTIFY (${SAMPLES} samples): p50 ${lat.p50.toFixed(1)} ms, p99 ${lat.p99.toFixed(1)} ms, max ${lat.max.toFixed(1)} ms`);
    const rss = await peakRss(db.url, c);
    console.log(`100 MiB payload: worker peak RSS ${rss.maxRssMiB.toFixed(0)} MiB, process run ${(rss.ms / 1000).toFixed(2)} s`);
  }
  const W = WORKERS;
  const rowsToRun = [
    { key: 'ours-Wx1', label: `neotoma-ops, ${W} workers x 1 slot`, run: () => oursThroughput(db.url, c, W, 1) },
    { key: 'ours-1xW', label: `neotoma-ops, 1 worker x ${W} slots`, run: () => oursThroughput(db.url, c, 1, W) },
  ];
  if (ONLY !== 'ours') {
    const best = await pgBossSweep(db.url, c);
    rowsToRun.push(
      { key: 'pgboss', label: `pg-boss 10.4.2, ${W} workers, batchSize ${best.batchSize}, interval ${best.interval} s`,
        run: () => pgBossThroughput(db.url, c, best.batchSize, best.interval, pgBossJobs(best.batchSize, best.interval)) },
      { key: 'graphile-W', label: `graphile-worker 0.17.3, concurrency ${W}`, run: () => graphileThroughput(db.url, c) },
      { key: 'graphile-Wx1', label: `graphile-worker 0.17.3, ${W} runners x 1`, run: () => graphileThroughput(db.url, c, W) },
      { key: 'pgmq-delete', label: `PGMQ 1.5.1, ${W} consumers x 1 (read 1, delete)`, run: () => pgmqThroughput(db.url, c, 'delete') },
      { key: 'pgmq-archive', label: `PGMQ 1.5.1, ${W} consumers x 1 (read 1, archive)`, run: () => pgmqThroughput(db.url, c, 'archive') },
      { key: 'pgmq-batch', label: `PGMQ 1.5.1, 1 consumer, read ${W} (delete batch)`, run: () => pgmqBatchThroughput(db.url, c) },
    );
  }
  const results = new Map(rowsToRun.map((row) => [row.key, []]));
  for (let round = 1; round <= ROUNDS; round++) {
    console.log(`round ${round} of ${ROUNDS}:`);
    for (const row of rowsToRun) {
      const r = await row.run();
      results.get(row.key).push(r);
      console.log(`  ${rowText(row.label, r)}`);
    }
  }

  const med = new Map();
  for (const row of rowsToRun) {
    const rs = results.get(row.key);
    const us = rs.map(dbUsPerJob);
    med.set(row.key, { perSec: median(rs.map((r) => r.perSec)), dbUs: us.includes(null) ? null : median(us) });
  }
  console.log(`medians over ${ROUNDS} round(s):`);
  for (const row of rowsToRun) {
    const m = med.get(row.key);
    console.log(`  ${row.label.padEnd(52)} ${m.perSec.toFixed(0).padStart(6)} jobs/s, DB CPU per job: ${fmtUs(m.dbUs)}`);
  }
  if (ONLY !== 'ours') {
    const ratio = (a, b, field) => {
      const x = med.get(a)[field];
      const y = med.get(b)[field];
      return x === null || y === null ? 'n/a' : `${(x / y).toFixed(2)}x`;
    };
    const lines = [
      [`jobs/s, ours ${W}x1 / graphile ${W} runners x 1`, ratio('ours-Wx1', 'graphile-Wx1', 'perSec')],
      [`jobs/s, ours 1x${W} / graphile concurrency ${W}`, ratio('ours-1xW', 'graphile-W', 'perSec')],
      [`jobs/s, ours ${W}x1 / PGMQ ${W}x1 (delete)`, ratio('ours-Wx1', 'pgmq-delete', 'perSec')],
      [`jobs/s, ours ${W}x1 / PGMQ ${W}x1 (archive)`, ratio('ours-Wx1', 'pgmq-archive', 'perSec')],
      [`jobs/s, ours 1x${W} / PGMQ 1 consumer, read ${W}`, ratio('ours-1xW', 'pgmq-batch', 'perSec')],
      [`jobs/s, ours ${W}x1 / pg-boss best`, ratio('ours-Wx1', 'pgboss', 'perSec')],
      [`jobs/s, ours 1x${W} / pg-boss best`, ratio('ours-1xW', 'pgboss', 'perSec')],
      [`DB CPU per job, ours ${W}x1 / graphile ${W} runners x 1`, ratio('ours-Wx1', 'graphile-Wx1', 'dbUs')],
      [`DB CPU per job, ours 1x${W} / graphile concurrency ${W}`, ratio('ours-1xW', 'graphile-W', 'dbUs')],
      [`DB CPU per job, ours ${W}x1 / PGMQ ${W}x1 (archive)`, ratio('ours-Wx1', 'pgmq-archive', 'dbUs')],
      [`DB CPU per job, ours 1x${W} / PGMQ 1 consumer, read ${W}`, ratio('ours-1xW', 'pgmq-batch', 'dbUs')],
    ];
    console.log('ratios of the medians:');
    for (const [k, v] of lines) console.log(`  ${k.padEnd(52)} ${v}`);
  }
  await c.end();
} finally {
  await db.destroy();
}
