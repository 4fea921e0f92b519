// Many workers on one database (see docs/benchmarks.md, "Many worker processes on one backlog").
//   npm run build && node bench/scale/workers.mjs [--jobs 20000] [--rounds 2] [--concurrency 4] [--processes 1,2,4,8]
// On a throwaway PostgreSQL 15 cluster (fsync off; DATABASE_URL to use another database): a backlog of N due jobs
// of 1 KiB, drained by each number of worker processes in --processes (default 1,2,4,8; e.g. --processes 1,8 for a
// quick comparison of two points), each process its own pool of concurrency + 2 connections and its own worker id,
// as on separate machines; storage counts its writes per key. Per run: jobs/s, the database server's CPU per job
// (from /proc, bench/lib/server-cpu.mjs, over the timed part only; "n/a" when the server is not local), and the
// checks: every job completed, every object written exactly once (the sum of the writes of all processes), no job
// left behind; how evenly the processes shared the work (smallest and largest share). Per round: the jobs/s of the
// largest process count ÷ the smallest (8 ÷ 1 by default; each process has the same concurrency); at the end the
// median jobs/s and DB CPU per job of each process count over the rounds.
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';

const { root, database, enqueue } = await import('../lib/upload-fixtures.mjs');
const { serverCpu, perJobText } = await import('../lib/server-cpu.mjs');
const { migrateUp } = await import(path.join(root, 'dist', 'migrate.js'));
const { values } = parseArgs({
  options: {
    jobs: { type: 'string', default: '20000' },
    rounds: { type: 'string', default: '2' },
    concurrency: { type: 'string', default: '4' },
    processes: { type: 'string', default: '1,2,4,8' },
  },
});
const JOBS = Number(values.jobs);
const PROCESSES = values.processes.split(',').map(Number);
if (PROCESSES.some((p) => !Number.isInteger(p) || p < 1)) throw new Error('--processes takes whole numbers ≥ 1, e.g. 1,8');
const FEWEST = Math.min(...PROCESSES);
const MOST = Math.max(...PROCESSES);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
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
  const cpu = await serverCpu(c);
  const perSec = new Map(PROCESSES.map((p) => [p, []]));
  const dbUs = new Map(PROCESSES.map((p) => [p, []]));
  for (let round = 1; round <= Number(values.rounds); round++) {
    for (const processes of PROCESSES) {
      await c.query('DELETE FROM public.upload_queue');
      await enqueue(c, JOBS, 1024);
      await c.query('VACUUM ANALYZE public.upload_queue, public.upload_queue_payloads, public.sources');
      const cpu0 = await cpu();
      const t0 = performance.now();
      const results = await run(db.url, processes);
      const seconds = (performance.now() - t0) / 1000;
      const cpu1 = await cpu();
      const writes = {};
      for (const r of results) for (const [k, n] of Object.entries(r.writes)) writes[k] = (writes[k] ?? 0) + n;
      const keys = Object.keys(writes).length;
      const twice = Object.values(writes).filter((n) => n > 1).length;
      const completed = results.reduce((n, r) => n + r.summary.completed, 0);
      const left = (await c.query(`SELECT count(*)::int AS n FROM public.upload_queue WHERE status <> 'completed'`)).rows[0].n;
      const shares = results.map((r) => r.summary.completed).sort((a, b) => a - b);
      perSec.get(processes).push(JOBS / seconds);
      dbUs.get(processes).push(cpu0 === null || cpu1 === null ? null : ((cpu1 - cpu0) * 1000) / JOBS);
      console.log(`  round ${round}, ${processes} process(es): ${(JOBS / seconds).toFixed(0).padStart(6)} jobs/s  ` +
        `DB CPU per job: ${perJobText(cpu0, cpu1, JOBS)}, ` +
        `completed ${completed}/${JOBS}, objects written ${keys}, written twice ${twice}, left ${left}, shares ${shares[0]}..${shares.at(-1)}`);
      if (completed !== JOBS || keys !== JOBS || twice !== 0 || left !== 0) throw new Error('exactly-once check failed');
    }
    if (MOST !== FEWEST) {
      const ratio = perSec.get(MOST).at(-1) / perSec.get(FEWEST).at(-1);
      console.log(`  round ${round}: ${MOST} processes / ${FEWEST} process(es), jobs/s (concurrency ${values.concurrency} each): ${ratio.toFixed(2)}x`);
    }
  }
  console.log(`medians over ${values.rounds} round(s):`);
  for (const p of PROCESSES) {
    const us = dbUs.get(p);
    console.log(`  ${p} process(es): ${median(perSec.get(p)).toFixed(0).padStart(6)} jobs/s, DB CPU per job: ` +
      `${us.includes(null) ? 'n/a' : `${median(us).toFixed(0)} µs`}`);
  }
  if (MOST !== FEWEST) {
    console.log(`  ${MOST} processes / ${FEWEST} process(es), median jobs/s: ${(median(perSec.get(MOST)) / median(perSec.get(FEWEST))).toFixed(2)}x`);
  }
  await c.end();
} finally {
  await db.destroy();
}
