// The upload processor as an Edge Function against the long-running worker (see docs/benchmarks.md, "The upload
// processor as an Edge Function").
//   npm run build && node bench/edge/run.mjs [--jobs N] [--rounds N] [--pool N]
// On one throwaway PostgreSQL 15 cluster (fsync off) behind a real pgbouncer in transaction mode (how an Edge Function
// reaches Supabase's database), no-op storage, side by side in each round:
//   1. throughput on a backlog of N due jobs: `worker --once` (drainUploadQueue, concurrency 4) and the Edge Function's
//      handler (the built module, web-standard Request/Response, budget 50 s, concurrency 4) called until the backlog
//      is gone, counting invocations;
//   2. the cost of one invocation that finds nothing due: the first in a fresh isolate (pool not yet connected) and a
//      warm one;
//   3. the handler's CPU time per MiB stored (process.cpuUsage around one invocation storing 64 payloads of 1 MiB):
//      what Supabase's CPU limit per request (2 s) allows per invocation.
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';

const { root, database, enqueue } = await import('../lib/upload-fixtures.mjs');
const { startPgbouncer } = await import('../../scripts/pgbouncer.mjs');
const { buildEdgeFunction } = await import('../../scripts/build-edge.mjs');
const { migrateUp } = await import(path.join(root, 'dist', 'migrate.js'));
const { drainUploadQueue } = await import(path.join(root, 'dist', 'worker', 'drain.js'));

const { values } = parseArgs({
  options: { jobs: { type: 'string', default: '5000' }, rounds: { type: 'string', default: '3' }, pool: { type: 'string', default: '20' } },
});
const JOBS = Number(values.jobs);
const ROUNDS = Number(values.rounds);
const POOL = Number(values.pool);
const CONCURRENCY = 4;
const quiet = () => undefined;
const noop = { backend: 'noop', put: async () => undefined };
const KEY = 'bench-service-role-key';

const edge = await import(pathToFileURL(await buildEdgeFunction()).href);
const request = () => new Request('http://localhost/functions/v1/upload-queue-processor', { method: 'POST', headers: { authorization: `Bearer ${KEY}` } });

async function backlog(c) {
  await c.query('DELETE FROM public.upload_queue');
  await enqueue(c, JOBS);
  await c.query('VACUUM ANALYZE public.upload_queue, public.upload_queue_payloads, public.sources, neotoma_ops.upload_queue_counters');
}

async function workerOnce(url) {
  const pool = new pg.Pool({ connectionString: url, max: CONCURRENCY + 2 });
  try {
    const t0 = performance.now();
    const s = await drainUploadQueue({ pool, storage: noop, concurrency: CONCURRENCY, leaseSeconds: 60, workerId: 'bench-once', log: quiet });
    if (s.completed !== JOBS) throw new Error(`worker --once completed ${s.completed} of ${JOBS}`);
    return (JOBS / (performance.now() - t0)) * 1000;
  } finally {
    await pool.end();
  }
}

async function edgeFunction(url) {
  const processor = edge.createUploadQueueProcessor({ databaseUrl: url, acceptedKeys: [KEY], storage: noop, concurrency: CONCURRENCY, budgetMs: 50_000, log: quiet });
  try {
    const t0 = performance.now();
    let done = 0;
    let calls = 0;
    while (done < JOBS) {
      const res = await processor.handle(request());
      const body = await res.json();
      if (res.status !== 200) throw new Error(`${res.status}: ${body.message}`);
      done += body.completed;
      calls += 1;
      if (body.claimed === 0) throw new Error(`nothing claimed with ${JOBS - done} left`);
    }
    return { rate: (JOBS / (performance.now() - t0)) * 1000, calls };
  } finally {
    await processor.close();
  }
}

async function emptyInvocations(url) {
  const processor = edge.createUploadQueueProcessor({ databaseUrl: url, acceptedKeys: [KEY], storage: noop, concurrency: CONCURRENCY, log: quiet });
  try {
    let t0 = performance.now();
    await (await processor.handle(request())).json();
    const cold = performance.now() - t0;
    const warm = [];
    for (let i = 0; i < 20; i++) {
      t0 = performance.now();
      await (await processor.handle(request())).json();
      warm.push(performance.now() - t0);
    }
    warm.sort((a, b) => a - b);
    return { cold, warm: warm[Math.floor(warm.length / 2)] };
  } finally {
    await processor.close();
  }
}

const db = await database();
let pooler;
try {
  await migrateUp(db.url, { log: quiet });
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  pooler = await startPgbouncer(db.url, 'transaction', POOL);
  const { rows } = await c.query(`SELECT current_setting('server_version') AS v`);
  console.log(`PostgreSQL ${rows[0].v}, pgbouncer transaction mode (default_pool_size ${POOL}), node ${process.version}, ${os.cpus().length} CPUs, load ${os.loadavg()[0].toFixed(2)}`);
  console.log(`throughput: ${JOBS} due jobs, concurrency ${CONCURRENCY}, no-op storage, ${ROUNDS} rounds`);
  const once = [];
  const fn = [];
  for (let round = 0; round < ROUNDS; round++) {
    await backlog(c);
    once.push(await workerOnce(pooler.url));
    await backlog(c);
    fn.push(await edgeFunction(pooler.url));
  }
  console.log(`  worker --once (drainUploadQueue)      ${once.map((r) => r.toFixed(0).padStart(6)).join(' ')} jobs/s`);
  console.log(`  Edge Function handler, budget 50 s    ${fn.map((r) => r.rate.toFixed(0).padStart(6)).join(' ')} jobs/s  (${fn.map((r) => r.calls).join(' / ')} invocations)` +
    `   vs worker --once: ${fn.map((r, i) => (r.rate / once[i]).toFixed(2)).join(' / ')}`);
  await c.query('DELETE FROM public.upload_queue');
  const empty = [];
  for (let round = 0; round < ROUNDS; round++) empty.push(await emptyInvocations(pooler.url));
  await c.query('DELETE FROM public.upload_queue');
  const cpu = [];
  for (let round = 0; round < ROUNDS; round++) {
    await c.query('DELETE FROM public.upload_queue');
    await enqueue(c, 64, 1 << 20);
    const processor = edge.createUploadQueueProcessor({ databaseUrl: pooler.url, acceptedKeys: [KEY], storage: noop, concurrency: CONCURRENCY, log: quiet });
    const before = process.cpuUsage();
    const body = await (await processor.handle(request())).json();
    const used = process.cpuUsage(before);
    await processor.close();
    if (body.completed !== 64) throw new Error(`stored ${body.completed} of 64 payloads of 1 MiB`);
    cpu.push((used.user + used.system) / 1000 / 64);
  }
  console.log(`  CPU time per MiB stored (64 x 1 MiB, handler process only): ${cpu.map((x) => x.toFixed(1)).join(' / ')} ms`);
  console.log(`  invocation with nothing due: first in a fresh isolate ${empty.map((e) => e.cold.toFixed(1)).join(' / ')} ms, warm (median of 20) ${empty.map((e) => e.warm.toFixed(1)).join(' / ')} ms`);
  await c.end();
} finally {
  await pooler?.stop();
  await db.destroy();
}
