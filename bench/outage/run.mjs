// A storage outage at peak ingest, and the drain after it (see docs/benchmarks.md, "A storage outage").
//   npm run build && node bench/outage/run.mjs [--gib 10] [--drain-gib 2] [--mib 1] [--writers 2] [--again 1,2]
// On a throwaway PostgreSQL 15 cluster (fsync off; WAL volume does not depend on it):
//   1. outage: `writers` sessions queue --gib GiB of payloads of --mib MiB each (a source row + enqueue_upload per
//      file, bytes generated in the server, as ingest queues them when storage fails); database size, WAL written
//      and the bytes the queue holds (the outage budget in use) are reported;
//   2. drain: 4 worker processes (drainUploadQueue, concurrency 4 each, no-op storage: the bytes are still read and
//      hashed) store the whole backlog; jobs/s and MiB/s; meanwhile a probe session times a quota-checked source
//      insert and a point query every 50 ms, against the same probe before the outage;
//   3. the payload table before and after VACUUM, and the database size;
//   4. 1 and 2 worker processes on a --drain-gib GiB backlog each (the same rate with fewer processes; 0: skipped);
//   5. with --again 1,2: the whole outage and drain again with that many worker processes (no probe).
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';

const { root, database } = await import('../lib/upload-fixtures.mjs');
const { migrateUp } = await import(path.join(root, 'dist', 'migrate.js'));
const { values } = parseArgs({
  options: {
    gib: { type: 'string', default: '10' }, 'drain-gib': { type: 'string', default: '2' },
    mib: { type: 'string', default: '1' }, writers: { type: 'string', default: '2' }, again: { type: 'string', default: '' },
  },
});
const MIB = Number(values.mib);
const WRITERS = Number(values.writers);
const here = path.dirname(fileURLToPath(import.meta.url));
const mib = (b) => Number(b) / 1048576;
const fmt = (b) => `${(mib(b) / 1024).toFixed(2)} GiB`;

async function queueBacklog(url, gib) {
  const files = Math.round((gib * 1024) / MIB);
  const per = Math.ceil(files / WRITERS);
  const t0 = performance.now();
  await Promise.all(Array.from({ length: WRITERS }, async (_, w) => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    for (let done = 0; done < per; done += 20) {
      const n = Math.min(20, per - done);
      // one transaction per 20 files, as 20 ingests would commit them; random bytes (not compressible)
      await c.query(`DO $$
        DECLARE b bytea; s uuid; u uuid := gen_random_uuid();
        BEGIN
          FOR i IN 1..${n} LOOP
            b := decode(repeat(md5(random()::text) || md5(random()::text), ${MIB} * 32768), 'hex');
            b := overlay(b placing decode(md5(clock_timestamp()::text || random()::text), 'hex') from 1);
            INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size, storage_status)
            VALUES (u, encode(sha256(b), 'hex'), 'application/pdf', u::text || '/' || encode(sha256(b), 'hex'), length(b), 'pending')
            RETURNING id INTO s;
            PERFORM public.enqueue_upload(s, b, 'storage unreachable');
          END LOOP;
        END $$`);
    }
    await c.end();
  }));
  const seconds = (performance.now() - t0) / 1000;
  return { files: per * WRITERS, seconds };
}

async function drain(url, processes, concurrency = 4) {
  // storage is back: the queued retries are due now (instead of 30 s to 8 min after their failure)
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  await c.query(`UPDATE public.upload_queue SET next_retry_at = now() WHERE status = 'pending'`);
  await c.query('VACUUM ANALYZE public.upload_queue');
  await c.end();
  const t0 = performance.now();
  const results = await Promise.all(Array.from({ length: processes }, (_, i) => new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(here, 'drain-child.mjs'), url, `drain-${i}`, String(concurrency)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`drain child exited ${code}`))));
  })));
  return { seconds: (performance.now() - t0) / 1000, completed: results.reduce((n, r) => n + r.completed, 0), failed: results.reduce((n, r) => n + r.retried + r.failed + r.lost, 0) };
}

/** Times a quota-checked insert (committed) and a point query every 50 ms until stop() is called. */
function probe(url) {
  const times = { insert: [], select: [] };
  let running = true;
  const done = (async () => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    const user = '9e9e9e9e-0000-4000-8000-000000000001';
    for (let i = 0; running; i++) {
      const h = (await c.query(`SELECT encode(sha256(convert_to($1, 'UTF8')), 'hex') AS h`, [`${Date.now()}-${i}-${Math.random()}`])).rows[0].h;
      let t = performance.now();
      await c.query(`INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size) VALUES ($1::uuid, $2, 'text/plain', $1::text || '/' || $2, 1000)`, [user, h]);
      times.insert.push(performance.now() - t);
      t = performance.now();
      await c.query('SELECT id FROM public.sources WHERE user_id = $1 AND content_hash = $2', [user, h]);
      times.select.push(performance.now() - t);
      await new Promise((r) => setTimeout(r, 50));
    }
    await c.end();
  })();
  return async () => {
    running = false;
    await done;
    const q = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
    return Object.fromEntries(Object.entries(times).map(([k, xs]) => [k, { n: xs.length, p50: q(xs, 0.5), p99: q(xs, 0.99), max: Math.max(...xs) }]));
  };
}

const db = await database();
const c = new pg.Client({ connectionString: db.url });
try {
  await migrateUp(db.url, { log: () => undefined });
  await c.connect();
  await c.query(`SELECT cron.unschedule(jobid) FROM cron.job`);
  await c.query(`UPDATE neotoma_ops.upload_queue_settings SET payload_bytes_cap = $1`, [Math.ceil(Number(values.gib) * 1.1 * 1024 ** 3)]);
  const stat = async () => (await c.query(`SELECT pg_database_size(current_database()) AS db, pg_current_wal_lsn() AS lsn,
      pg_total_relation_size('public.upload_queue_payloads') AS payloads,
      (SELECT value FROM public.ops_metrics() WHERE metric = 'upload_queue_payload_bytes') AS held`)).rows[0];
  const walSince = async (lsn) => Number((await c.query(`SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1) AS d`, [lsn])).rows[0].d);
  const { rows } = await c.query(`SELECT current_setting('server_version') AS v`);
  console.log(`PostgreSQL ${rows[0].v}, node ${process.version}, ${os.cpus().length} CPUs, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, load ${os.loadavg()[0].toFixed(2)}`);

  const idleStop = probe(db.url);
  await new Promise((r) => setTimeout(r, 5000));
  const idle = await idleStop();

  const s0 = await stat();
  const q = await queueBacklog(db.url, Number(values.gib));
  const s1 = await stat();
  const queuedBytes = Number(s1.held) - Number(s0.held);
  console.log(`outage: queued ${q.files} files of ${MIB} MiB (${fmt(queuedBytes)}) in ${q.seconds.toFixed(1)} s (${(mib(queuedBytes) / q.seconds).toFixed(0)} MiB/s, ${WRITERS} sessions)`);
  console.log(`  database ${fmt(s0.db)} -> ${fmt(s1.db)}; payload table ${fmt(s1.payloads)}; WAL written ${fmt(await walSince(s0.lsn))}; held (metric) ${fmt(s1.held)}`);

  const lsnDrain = (await stat()).lsn;
  const duringStop = probe(db.url);
  const d4 = await drain(db.url, 4);
  const during = await duringStop();
  const s2 = await stat();
  console.log(`drain, 4 worker processes x 4: ${d4.completed} jobs in ${d4.seconds.toFixed(1)} s = ${(d4.completed / d4.seconds).toFixed(0)} jobs/s, ${(mib(queuedBytes) / d4.seconds).toFixed(0)} MiB/s (failed attempts ${d4.failed})`);
  console.log(`  WAL written by the drain ${fmt(await walSince(lsnDrain))}; held after ${fmt(s2.held)}; payload table ${fmt(s2.payloads)}, database ${fmt(s2.db)} before VACUUM`);
  const show = (name, r) => `${name}: insert p50 ${r.insert.p50.toFixed(1)} / p99 ${r.insert.p99.toFixed(1)} / max ${r.insert.max.toFixed(1)} ms, select p50 ${r.select.p50.toFixed(2)} / p99 ${r.select.p99.toFixed(2)} / max ${r.select.max.toFixed(2)} ms (${r.insert.n} probes)`;
  console.log(`  probe ${show('idle', idle)}`);
  console.log(`  probe ${show('during the drain', during)}`);
  const tv = performance.now();
  await c.query('VACUUM public.upload_queue_payloads');
  const s3 = await stat();
  console.log(`  VACUUM public.upload_queue_payloads (${((performance.now() - tv) / 1000).toFixed(1)} s): payload table ${fmt(s3.payloads)}, database ${fmt(s3.db)}`);

  for (const processes of Number(values['drain-gib']) > 0 ? [1, 2] : []) {
    await c.query('DELETE FROM public.upload_queue');
    await c.query('VACUUM public.upload_queue_payloads');
    const b = await queueBacklog(db.url, Number(values['drain-gib']));
    const d = await drain(db.url, processes);
    console.log(`drain, ${processes} worker process(es) x 4, ${values['drain-gib']} GiB backlog: ${d.completed} jobs in ${d.seconds.toFixed(1)} s = ${(d.completed / d.seconds).toFixed(0)} jobs/s, ${((b.files * MIB) / d.seconds).toFixed(0)} MiB/s`);
  }
  for (const processes of values.again ? values.again.split(',').map(Number) : []) {
    await c.query('DELETE FROM public.upload_queue');
    await c.query('VACUUM public.upload_queue_payloads');
    const b = await queueBacklog(db.url, Number(values.gib));
    const d = await drain(db.url, processes);
    console.log(`drain, ${processes} worker process(es) x 4, ${values.gib} GiB backlog (queued at ${((b.files * MIB) / b.seconds).toFixed(0)} MiB/s): ` +
      `${d.completed} jobs in ${d.seconds.toFixed(1)} s = ${(d.completed / d.seconds).toFixed(0)} jobs/s, ${((b.files * MIB) / d.seconds).toFixed(0)} MiB/s`);
  }
} finally {
  await c.end().catch(() => undefined);
  await db.destroy();
}
