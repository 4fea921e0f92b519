// Many workers on one database (see docs/benchmarks.md, "Many worker processes on one backlog").
//   npm run build && node bench/scale/workers.mjs [--jobs 20000] [--rounds 2] [--concurrency 4]
// On a throwaway PostgreSQL 15 cluster (fsync off): a backlog of N due jobs of 1 KiB, drained by 1, 2, 4 and 8
// worker processes (each its own pool of concurrency + 2 connections and its own worker id, as on separate
// machines; storage counts its writes per key). Per run: jobs/s, and the checks: every job completed, every
// object written exactly once (the sum of the writes of all processes), no job left behind; how evenly the
// processes shared the work (smallest and largest share).
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';

const { root, database, enqueue } = await import('../lib/upload-fixtures.mjs');
const { migrateUp } = await import(path.join(root, 'dist', 'migrate.js'));
const { values } = parseArgs({
  options: { jobs: { type: 'string', default: '20000' }, rounds: { type: 'string', default: '2' }, concurrency: { type: 'string', default: '4' } },
});
const JOBS = Number(values.jobs);
const here = path.dirname(fileURLToPath(import.meta.url));

function run(url, processes) {
  return Promise.all(Array.from({ length: processes }, (_, i) => new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(here, 'worker-child.mjs'), url, `w${processes}-${i}`, values.concurrency], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`worker exited ${code}`))));
  })));
}

const db = await database();
try {
  await migrateUp(db.url, { log: () => undefined });
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  await c.query('SELECT cron.unschedule(jobid) FROM cron.job');
  const { rows } = await c.query(`SELECT current_setting('server_version') AS v, current_setting('max_connections') AS mc`);
  console.log(`PostgreSQL ${rows[0].v} (max_connections ${rows[0].mc}), node ${process.version}, ${os.cpus().length} CPUs, load ${os.loadavg()[0].toFixed(2)}`);
  console.log(`${JOBS} due jobs of 1 KiB, worker processes x concurrency ${values.concurrency}, counting storage, ${values.rounds} rounds`);
  for (let round = 1; round <= Number(values.rounds); round++) {
    for (const processes of [1, 2, 4, 8]) {
      await c.query('DELETE FROM public.upload_queue');
      await enqueue(c, JOBS, 1024);
      await c.query('VACUUM ANALYZE public.upload_queue, public.upload_queue_payloads, public.sources');
      const t0 = performance.now();
      const results = await run(db.url, processes);
      const seconds = (performance.now() - t0) / 1000;
      const writes = {};
      for (const r of results) for (const [k, n] of Object.entries(r.writes)) writes[k] = (writes[k] ?? 0) + n;
      const keys = Object.keys(writes).length;
      const twice = Object.values(writes).filter((n) => n > 1).length;
      const completed = results.reduce((n, r) => n + r.summary.completed, 0);
      const left = (await c.query(`SELECT count(*)::int AS n FROM public.upload_queue WHERE status <> 'completed'`)).rows[0].n;
      const shares = results.map((r) => r.summary.completed).sort((a, b) => a - b);
      console.log(`  round ${round}, ${processes} process(es): ${(JOBS / seconds).toFixed(0).padStart(6)} jobs/s  ` +
        `completed ${completed}/${JOBS}, objects written ${keys}, written twice ${twice}, left ${left}, shares ${shares[0]}..${shares.at(-1)}`);
      if (completed !== JOBS || keys !== JOBS || twice !== 0 || left !== 0) throw new Error('exactly-once check failed');
    }
  }
  await c.end();
} finally {
  await db.destroy();
}
