// The upload worker through a connection pooler (see docs/benchmarks.md, "The upload worker through a
// connection pooler").
//   npm run build && node bench/pooler/run.mjs [--jobs N] [--rounds N] [--samples N] [--pool N]
// On one throwaway PostgreSQL 15 cluster (fsync off), with a real pgbouncer in session mode and one in
// transaction mode in front of it (pool of --pool server connections each), measures side by side:
//   1. claim+complete throughput, no-op storage, one worker with 8 slots, a backlog of N due jobs, --rounds times
//      in turn over: direct with named prepared statements for the claim and the batch completion (as the worker
//      sent them before it had to work through transaction poolers; injected here by the benchmark), direct as
//      shipped (unnamed statements), session pooler, transaction pooler;
//   2. due → stored latency of one idle worker: direct and session woken by NOTIFY (poll 60 s), transaction
//      mode found by polling (notifications cannot arrive there) at 1 s and at the default 5 s, jobs arriving at
//      random moments of the interval.
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';

const { root, database, enqueue, dueToStoredLatency } = await import('../lib/upload-fixtures.mjs');
const { startPgbouncer } = await import('../../scripts/pgbouncer.mjs');
const { migrateUp } = await import(path.join(root, 'dist', 'migrate.js'));
const { UploadWorker } = await import(path.join(root, 'dist', 'worker', 'worker.js'));

const { values } = parseArgs({
  options: {
    jobs: { type: 'string', default: '5000' },
    rounds: { type: 'string', default: '3' },
    samples: { type: 'string', default: '100' },
    pool: { type: 'string', default: '20' },
  },
});
const JOBS = Number(values.jobs);
const ROUNDS = Number(values.rounds);
const SAMPLES = Number(values.samples);
const POOL = Number(values.pool);
const SLOTS = 8;
const quiet = () => undefined;
const noop = { backend: 'noop', put: async () => undefined };

// The "named" variant: the same worker, with the two hot statements given names (prepared once per connection).
const NAMED = [
  ['claim_upload_jobs_with_content', 'bench_claim_upload_jobs'],
  ['complete_upload_jobs', 'bench_complete_upload_jobs'],
];
let nameStatements = false;
const clientQuery = pg.Client.prototype.query;
pg.Client.prototype.query = function query(config, ...rest) {
  if (nameStatements && config && typeof config === 'object' && typeof config.text === 'string' && !config.name) {
    const hit = NAMED.find(([fn]) => config.text.includes(`public.${fn}(`));
    if (hit) config = { ...config, name: hit[1] };
  }
  return clientQuery.call(this, config, ...rest);
};

async function throughput(url, c, named) {
  await c.query('DELETE FROM public.upload_queue');
  await enqueue(c, JOBS);
  await c.query('VACUUM ANALYZE public.upload_queue, public.upload_queue_payloads, public.sources, neotoma_ops.upload_queue_counters');
  nameStatements = named;
  try {
    const t0 = performance.now();
    const worker = new UploadWorker({ databaseUrl: url, storage: noop, concurrency: SLOTS, once: true, leaseSeconds: 60, workerId: 'bench', log: quiet });
    const stats = await worker.run();
    const ms = performance.now() - t0;
    if (stats.completed !== JOBS) throw new Error(`completed ${stats.completed} of ${JOBS}`);
    return (JOBS / ms) * 1000;
  } finally {
    nameStatements = false;
  }
}

function latency(url, c, pollIntervalMs, ready, samples, arrivalSpreadMs = 0) {
  return dueToStoredLatency(c, samples, (storage, log) =>
    new UploadWorker({ databaseUrl: url, storage, concurrency: 4, pollIntervalMs, leaseSeconds: 60, workerId: 'latency', log }),
  ready, arrivalSpreadMs);
}

const db = await database();
const poolers = [];
try {
  await migrateUp(db.url, { log: quiet });
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  const session = await startPgbouncer(db.url, 'session', POOL);
  poolers.push(session);
  const transaction = await startPgbouncer(db.url, 'transaction', POOL);
  poolers.push(transaction);
  const { stdout: version } = await import('node:child_process').then(({ execFileSync }) => ({ stdout: execFileSync('/usr/sbin/pgbouncer', ['--version']).toString() }));
  const { rows } = await c.query(`SELECT current_setting('server_version') AS v`);
  console.log(`PostgreSQL ${rows[0].v}, ${version.split('\n')[0]}, node ${process.version}, ${os.cpus().length} CPUs, load ${os.loadavg()[0].toFixed(2)}`);
  console.log(`throughput: ${JOBS} due jobs, one worker x ${SLOTS} slots, no-op storage, pgbouncer default_pool_size ${POOL}, ${ROUNDS} rounds`);

  const variants = [
    ['direct, named statements (before)', db.url, true],
    ['direct, unnamed statements (shipped)', db.url, false],
    ['pgbouncer session mode', session.url, false],
    ['pgbouncer transaction mode', transaction.url, false],
  ];
  const results = new Map(variants.map(([name]) => [name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, url, named] of variants) results.get(name).push(await throughput(url, c, named));
  }
  const base = results.get('direct, unnamed statements (shipped)');
  for (const [name, rates] of results) {
    const ratios = rates.map((r, i) => (r / base[i]).toFixed(2));
    console.log(`  ${name.padEnd(38)} ${rates.map((r) => r.toFixed(0).padStart(6)).join(' ')} jobs/s   vs direct shipped: ${ratios.join(' / ')}`);
  }

  console.log(`latency due -> stored (one idle worker, ${SAMPLES} samples with NOTIFY, ${Math.ceil(SAMPLES / 4)} when polling):`);
  const show = (name, r) => console.log(`  ${name.padEnd(44)} p50 ${r.p50.toFixed(1).padStart(7)} ms  p99 ${r.p99.toFixed(1).padStart(7)} ms  max ${r.max.toFixed(1).padStart(7)} ms`);
  show('direct, NOTIFY', await latency(db.url, c, 60_000, 'listening on upload_queue', SAMPLES));
  show('pgbouncer session mode, NOTIFY', await latency(session.url, c, 60_000, 'listening on upload_queue', SAMPLES));
  // jobs arrive at random moments of the polling worker's interval
  show('pgbouncer transaction mode, polling 1 s', await latency(transaction.url, c, 1000, 'notifications do not arrive', Math.ceil(SAMPLES / 4), 1000));
  show('pgbouncer transaction mode, polling 5 s', await latency(transaction.url, c, 5000, 'notifications do not arrive', Math.ceil(SAMPLES / 4), 5000));
  await c.end();
} finally {
  for (const p of poolers) await p.stop();
  await db.destroy();
}
