// Uploads per second into the real Supabase Storage API server (file backend, behind its /storage/v1 gateway), by the
// upload worker and by the Edge Function under Deno, against the floor: a bare @supabase/storage-js upload loop at
// the same concurrency (see docs/benchmarks.md, "Uploads into the real Supabase Storage server").
//   npm run build && node bench/storage/run.mjs [--rounds N] [--small N] [--large N] [--concurrency N]
// Storage's database and the queue's database are throwaway PostgreSQL clusters (fsync off) on this machine; each
// round runs, for 1 KiB and for 1 MiB files, in turn: the floor (N distinct objects, `concurrency` uploads at
// once), the floor of the mechanism (the same loop reading each payload from the queue's database first), the worker (drainUploadQueue with the supabase adapter, 1 process × `concurrency` slots, N due jobs) and
// the Edge Function (the unmodified index.ts under Deno, through pgbouncer in transaction mode, one invocation with
// UPLOAD_PROCESSOR_CONCURRENCY = `concurrency`, N due jobs). Needs ../shared/tools (the Storage server).
import { randomBytes, randomUUID } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';

const { root, database, enqueue, sha } = await import('../lib/upload-fixtures.mjs');
const { startPgbouncer } = await import('../../scripts/pgbouncer.mjs');
const { buildEdgeFunction } = await import('../../scripts/build-edge.mjs');
const { startStorageServer, startEdgeFunction, storageServerMissing } = await import('../../scripts/supabase-stack.mjs');
const { migrateUp } = await import(path.join(root, 'dist', 'migrate.js'));
const { drainUploadQueue } = await import(path.join(root, 'dist', 'worker', 'drain.js'));
const { SupabaseStorage } = await import(path.join(root, 'dist', 'storage', 'index.js'));
const { StorageClient } = await import('@supabase/storage-js');

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    small: { type: 'string', default: '2000' },
    large: { type: 'string', default: '200' },
    concurrency: { type: 'string', default: '8' },
  },
});
const ROUNDS = Number(values.rounds);
const CONCURRENCY = Number(values.concurrency);
const SHAPES = [
  { name: '1 KiB', size: 1024, n: Number(values.small) },
  { name: '1 MiB', size: 1 << 20, n: Number(values.large) },
];
const quiet = () => undefined;

const missing = storageServerMissing();
if (missing) {
  console.error(`bench/storage: ${missing}`);
  process.exit(2);
}

/** The floor: `n` uploads of distinct objects with storage-js alone, `CONCURRENCY` at a time. */
async function floor(url, key, size, n) {
  const client = new StorageClient(`${url}/storage/v1`, { apikey: key, Authorization: `Bearer ${key}` });
  const user = randomUUID();
  const bodies = Array.from({ length: n }, () => randomBytes(size));
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
    for (let i = next++; i < n; i = next++) {
      const body = bodies[i];
      const { error } = await client.from('sources').upload(`${user}/${sha(body)}`, body, { contentType: 'application/octet-stream', upsert: true });
      if (error) throw error;
    }
  }));
  return (n / (performance.now() - t0)) * 1000;
}

/**
 * The floor of the mechanism: the same loop, each upload's bytes first read from the queue's database (the queued
 * payload, one SELECT per upload on a pool of `CONCURRENCY` connections): what keeping the bytes in PostgreSQL until
 * they are stored costs at the least, with no claim, lease or completion.
 */
async function floorFromDatabase(dbUrl, url, key, size, n, c) {
  await c.query('DELETE FROM public.upload_queue');
  await enqueue(c, n, size);
  const { rows: jobs } = await c.query('SELECT job_id FROM public.upload_queue_payloads');
  const client = new StorageClient(`${url}/storage/v1`, { apikey: key, Authorization: `Bearer ${key}` });
  const pool = new pg.Pool({ connectionString: dbUrl, max: CONCURRENCY });
  const user = randomUUID();
  let next = 0;
  try {
    const t0 = performance.now();
    await Promise.all(Array.from({ length: CONCURRENCY }, async () => {
      for (let i = next++; i < n; i = next++) {
        const { rows } = await pool.query('SELECT content FROM public.upload_queue_payloads WHERE job_id = $1', [jobs[i].job_id]);
        const body = rows[0].content;
        const { error } = await client.from('sources').upload(`${user}/${sha(body)}-${i}`, body, { contentType: 'application/octet-stream', upsert: true });
        if (error) throw error;
      }
    }));
    return (n / (performance.now() - t0)) * 1000;
  } finally {
    await pool.end();
  }
}

async function worker(dbUrl, url, key, size, n, c) {
  await c.query('DELETE FROM public.upload_queue');
  await enqueue(c, n, size);
  const pool = new pg.Pool({ connectionString: dbUrl, max: CONCURRENCY + 2 });
  try {
    const t0 = performance.now();
    const s = await drainUploadQueue({ pool, storage: new SupabaseStorage({ url, key }), concurrency: CONCURRENCY, leaseSeconds: 120, log: quiet });
    if (s.completed !== n) throw new Error(`the worker stored ${s.completed} of ${n}`);
    return (n / (performance.now() - t0)) * 1000;
  } finally {
    await pool.end();
  }
}

async function edgeFunction(fn, key, size, n, c) {
  await c.query('DELETE FROM public.upload_queue');
  await enqueue(c, n, size);
  const t0 = performance.now();
  const res = await fetch(`${fn.url}/functions/v1/upload-queue-processor`, { method: 'POST', headers: { authorization: `Bearer ${key}` } });
  const body = await res.json();
  if (res.status !== 200 || body.completed !== n) throw new Error(`the Edge Function answered ${res.status}: ${JSON.stringify(body)}`);
  return (n / (performance.now() - t0)) * 1000;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const storageDb = await database();
const queueDb = await database();
let storage;
let pooler;
let fn;
try {
  storage = await startStorageServer({ databaseUrl: storageDb.url, fileSizeLimit: 64 << 20 });
  await new StorageClient(`${storage.url}/storage/v1`, { apikey: storage.serviceRoleKey, Authorization: `Bearer ${storage.serviceRoleKey}` })
    .createBucket('sources', { public: false });
  await migrateUp(queueDb.url, { log: quiet });
  const c = new pg.Client({ connectionString: queueDb.url });
  await c.connect();
  pooler = await startPgbouncer(queueDb.url, 'transaction', CONCURRENCY + 4);
  await buildEdgeFunction();
  fn = await startEdgeFunction({
    NEOTOMA_DATABASE_URL: pooler.url, SUPABASE_URL: storage.url, SUPABASE_SECRET_KEYS: storage.secretKeys,
    UPLOAD_PROCESSOR_CONCURRENCY: String(CONCURRENCY), UPLOAD_PROCESSOR_BUDGET_SECONDS: '140',
  });
  const { rows } = await c.query(`SELECT current_setting('server_version') AS v`);
  console.log(`PostgreSQL ${rows[0].v}, Supabase Storage 1.11.2 (file backend) behind its gateway, node ${process.version}, ` +
    `${os.cpus().length} CPUs, load ${os.loadavg()[0].toFixed(2)}; concurrency ${CONCURRENCY}, ${ROUNDS} rounds, secret key`);
  for (const shape of SHAPES) {
    const r = { floor: [], dbFloor: [], worker: [], edge: [] };
    for (let round = 0; round < ROUNDS; round++) {
      r.floor.push(await floor(storage.url, storage.secretKey, shape.size, shape.n));
      r.dbFloor.push(await floorFromDatabase(queueDb.url, storage.url, storage.secretKey, shape.size, shape.n, c));
      r.worker.push(await worker(queueDb.url, storage.url, storage.secretKey, shape.size, shape.n, c));
      r.edge.push(await edgeFunction(fn, storage.secretKey, shape.size, shape.n, c));
    }
    const ratios = (xs, base, name) =>
      `   ÷ ${name}: ${xs.map((x, i) => (x / base[i]).toFixed(2)).join(' / ')} (median ${(median(xs) / median(base)).toFixed(2)})`;
    const line = (label, xs) =>
      `  ${label.padEnd(44)} ${xs.map((x) => x.toFixed(0).padStart(6)).join(' ')} uploads/s   median ${median(xs).toFixed(0).padStart(6)}` +
      (xs === r.floor ? '' : ratios(xs, r.floor, 'floor')) +
      (xs === r.floor || xs === r.dbFloor ? '' : ratios(xs, r.dbFloor, 'floor reading the bytes'));
    console.log(`${shape.name} files, ${shape.n} per run:`);
    console.log(line(`floor: storage-js upload loop × ${CONCURRENCY}`, r.floor));
    console.log(line(`floor reading each payload from the queue`, r.dbFloor));
    console.log(line(`worker 1 × ${CONCURRENCY} (drainUploadQueue)`, r.worker));
    console.log(line(`Edge Function under Deno, concurrency ${CONCURRENCY}`, r.edge));
  }
  await c.end();
} finally {
  await fn?.stop();
  await pooler?.stop();
  await storage?.stop();
  await queueDb.destroy();
  await storageDb.destroy();
}
