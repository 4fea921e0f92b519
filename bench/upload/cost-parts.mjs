// What each guarantee of the unbatched path costs (see docs/benchmarks.md, "What one job costs, part by part").
//   npm run build && node bench/upload/cost-parts.mjs [--jobs-per-client 600] [--clients 1,8] [--runs 3]
// On a throwaway PostgreSQL 15 cluster (fsync off; PG_BIN=<bin folder> for another server), pgbench drives the
// unbatched shape without any worker process: each client claims one job with claim_upload_jobs_with_content()
// and completes it with complete_upload_jobs(), two statements (two transactions) per job, extended protocol
// without prepared statements (as the worker runs through transaction-mode poolers). Per variant: jobs/s and the
// server's CPU per job (bench/lib/server-cpu.mjs), the median of --runs runs, each on a fresh backlog.
// Variants take away one part at a time from the shipped schema, then everything at once:
//   shipped                       as migrated: claim_upload_jobs_with_content(), then complete_upload_jobs()
//   one call per job              the worker's shape: complete_and_claim_upload_jobs() records this job and
//                                 claims the next in one call (the "variant" is the pgbench script, not the schema)
//   - sources quota trigger       quota_sources_update disabled (completion updates sources.storage_status)
//   - outage budget trigger       upload_queue_payloads_count_delete disabled (the payload delete's count)
//   - event counters              upload_queue_counter_add() made a no-op (upload_retries_total, upload_completed_total)
//   - source status update        complete_upload_jobs() without its UPDATE of sources
//   - state-machine CHECKs        the nine CHECK constraints of upload_queue dropped
//   - secondary indexes           the indexes no claim or completion reads dropped (lease expiry, completed_at,
//                                 failed_at, source_id, user listing): each state change writes fewer entries
//   all of the above              together
// and two floors, the same pgbench shape on tables of their own in the same cluster:
//   floor: claim UPDATE + DELETE  a minimal queue (id, run_at, locked_at, locked_by, payload): one UPDATE ...
//                                 SKIP LOCKED LIMIT 1 claim, one DELETE by id (graphile-worker's shape, no functions)
//   PGMQ 1.5.1 read + delete      pgmq.read(q, 30, 1), pgmq.delete(q, id) (../shared/vendor, plain SQL)
// Variants are destructive, so they run in the order above on one database; each later one keeps the earlier
// removals only in "all of the above" (the single removals are undone before the next one).
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';

const { root, database, enqueue } = await import('../lib/upload-fixtures.mjs');
const { serverCpu } = await import('../lib/server-cpu.mjs');
const { migrateUp } = await import(path.join(root, 'dist', 'migrate.js'));

const { values } = parseArgs({
  options: {
    'jobs-per-client': { type: 'string', default: '600' },
    clients: { type: 'string', default: '1,8' },
    runs: { type: 'string', default: '3' },
  },
});
const PER_CLIENT = Number(values['jobs-per-client']);
const CLIENTS = values.clients.split(',').map(Number);
const RUNS = Number(values.runs);
const pgBin = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';
const pgbench = existsSync(path.join(pgBin, 'pgbench')) ? path.join(pgBin, 'pgbench') : 'pgbench';
const pgmqSql = path.resolve(root, '..', 'shared', 'vendor', 'pgmq-1.5.1-c8575e3.sql');

const ZERO = '00000000-0000-0000-0000-000000000000';
const OURS = [
  `SELECT job_id, lease_token FROM public.claim_upload_jobs_with_content('w' || :client_id, 1, '60 s', 1048576, 16777216) \\gset`,
  `SELECT completed FROM public.complete_upload_jobs(ARRAY[:job_id::uuid], ARRAY[:lease_token::uuid], NULL::text[])`,
].join('\n');
// the worker's shape since complete_and_claim_upload_jobs(): one call per job (this job's completion, the next claim)
const COMBINED = [
  `SELECT job_id, lease_token FROM public.complete_and_claim_upload_jobs(ARRAY[:job_id::uuid], ARRAY[:lease_token::uuid], NULL::text[], 'w' || :client_id, 1, '60 s') WHERE completed IS NULL \\gset`,
].join('\n');
const FLOOR = [
  `UPDATE bench_floor.jobs SET locked_at = now(), locked_by = 'w' || :client_id WHERE id = (SELECT id FROM bench_floor.jobs WHERE locked_at IS NULL AND run_at <= now() ORDER BY run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id AS job_id \\gset`,
  `DELETE FROM bench_floor.jobs WHERE id = :job_id::bigint`,
].join('\n');
const PGMQ = [
  `SELECT msg_id AS job_id FROM pgmq.read('bench', 30, 1) \\gset`,
  `SELECT pgmq.delete('bench', :job_id::bigint)`,
].join('\n');

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const db = await database();
try {
  await migrateUp(db.url, { log: () => undefined });
  const c = new pg.Client({ connectionString: db.url });
  await c.connect();
  c.on('error', () => undefined); // the cluster goes away in finally
  await c.query('SELECT cron.unschedule(jobid) FROM cron.job');
  const cpu = await serverCpu(c);
  const { rows: [v] } = await c.query(`SELECT current_setting('server_version') AS v`);
  console.log(`PostgreSQL ${v.v}, ${os.cpus().length} CPUs, load ${os.loadavg()[0].toFixed(2)}; pgbench -M extended, ` +
    `${PER_CLIENT} jobs per client, clients ${CLIENTS.join(', ')}, median of ${RUNS} runs`);

  const script = (text, name) => {
    const file = path.join(os.tmpdir(), `neotoma-cost-parts-${process.pid}-${name}.pgb`);
    execFileSync('bash', ['-c', 'cat > "$1"', '_', file], { input: `${text}\n` });
    return file;
  };
  async function fill(kind, n) {
    if (kind === 'ours') {
      await c.query('DELETE FROM public.upload_queue');
      await enqueue(c, n);
      await c.query('VACUUM ANALYZE public.upload_queue, public.upload_queue_payloads, public.sources, neotoma_ops.upload_queue_counters');
    } else if (kind === 'floor') {
      await c.query('TRUNCATE bench_floor.jobs');
      await c.query(`INSERT INTO bench_floor.jobs (run_at, payload) SELECT now() - interval '1 s', '{"i": 1}' FROM generate_series(1, $1)`, [n]);
      await c.query('VACUUM ANALYZE bench_floor.jobs');
    } else {
      await c.query(`SELECT pgmq.purge_queue('bench')`);
      await c.query(`SELECT pgmq.send_batch('bench', array_fill('{"i": 1}'::jsonb, ARRAY[$1::int]))`, [n]);
      await c.query('VACUUM ANALYZE pgmq.q_bench');
    }
  }
  /** One pgbench run of `text` on a fresh backlog of `kind`: { rate: jobs/s, us: server CPU µs per job }. */
  async function once(label, kind, file, clients) {
    const jobs = clients * PER_CLIENT;
    await fill(kind, jobs + 50 * clients);
    const a = await cpu();
    const t0 = performance.now();
    const out = spawnSync(pgbench, ['-n', '-M', 'extended', '-c', String(clients), '-j', String(Math.min(clients, 2)),
      '-t', String(PER_CLIENT), '-D', `job_id=${ZERO}`, '-D', `lease_token=${ZERO}`, '-f', file, db.url], { encoding: 'utf8' });
    const ms = performance.now() - t0;
    const b = await cpu();
    if (out.status !== 0 || /error|aborted/i.test(out.stderr)) throw new Error(`${label}: pgbench failed: ${out.stderr}`);
    return { rate: (jobs / ms) * 1000, us: a === null || b === null ? NaN : ((b - a) * 1000) / jobs };
  }
  const oursFile = script(OURS, 'ours');
  const fmt = (x) => `${x.rate.toFixed(0).padStart(5)} jobs/s, ${x.us.toFixed(0).padStart(5)} µs`;
  /**
   * Paired: in each run, the shipped schema, then the variant (remove() before, restore() after), so that the
   * drift of a long run (the sources table grows with every backlog) falls on both alike. Reports medians and the
   * median of the per-run ratios variant / shipped.
   */
  async function variant(label, remove, restore, kind = 'ours', file = oursFile) {
    const cells = [];
    for (const clients of CLIENTS) {
      const base = [];
      const with_ = [];
      for (let r = 0; r < RUNS; r++) {
        base.push(await once('shipped', 'ours', oursFile, clients));
        await remove();
        try {
          with_.push(await once(label, kind, file, clients));
        } finally {
          await restore();
        }
      }
      cells.push({
        clients,
        base: { rate: median(base.map((x) => x.rate)), us: median(base.map((x) => x.us)) },
        part: { rate: median(with_.map((x) => x.rate)), us: median(with_.map((x) => x.us)) },
        rateRatio: median(with_.map((x, i) => x.rate / base[i].rate)),
        cpuRatio: median(with_.map((x, i) => x.us / base[i].us)),
      });
    }
    console.log(`${label.padEnd(34)} ${cells.map((x) => `${x.clients} client(s): shipped ${fmt(x.base)} | without ${fmt(x.part)} | ` +
      `jobs/s ×${x.rateRatio.toFixed(2)}, CPU/job ×${x.cpuRatio.toFixed(2)}`).join('\n' + ' '.repeat(35))}`);
    return cells;
  }
  /** Another queue on tables of its own, the same pgbench shape, paired with the shipped schema run by run. */
  const other = (label, kind, text) => variant(label, async () => undefined, async () => undefined, kind, script(text, kind));

  const fileSql = (rel) => readFileSync(path.join(root, rel), 'utf8');
  const counterFile = 'sql/functions/upload-queue/internal/upload_queue_counter_add.sql';
  const completeFile = 'sql/functions/upload-queue/complete_upload_jobs.sql';
  const noCounter = `CREATE OR REPLACE FUNCTION neotoma_ops.upload_queue_counter_add(p_counter text, p_n bigint DEFAULT 1)
    RETURNS void LANGUAGE plpgsql VOLATILE SECURITY INVOKER SET search_path = '' AS $$ BEGIN END $$`;
  // the shipped completion without its sources CTE (same text otherwise)
  const noSourceUpdate = fileSql(completeFile).replace(/, stored AS \([\s\S]*?WHERE s\.id = d\.source_id\s*\)/, '');
  if (noSourceUpdate === fileSql(completeFile)) throw new Error('could not take the sources update out of complete_upload_jobs');
  const { rows: checkDefs } = await c.query(`SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
    WHERE conrelid = 'public.upload_queue'::regclass AND contype = 'c' ORDER BY conname`);
  const secondary = ['upload_queue_lease_expiry_idx', 'upload_queue_completed_at_idx', 'upload_queue_failed_at_idx',
    'upload_queue_source_id_idx', 'upload_queue_user_id_created_at_idx'];
  const { rows: indexDefs } = await c.query(`SELECT indexrelid::regclass::text AS name, pg_get_indexdef(indexrelid) AS def
    FROM pg_index WHERE indrelid = 'public.upload_queue'::regclass AND indexrelid::regclass::text = ANY ($1)`, [secondary]);

  const parts = {
    quota: [`- sources quota trigger`,
      () => c.query('ALTER TABLE public.sources DISABLE TRIGGER quota_sources_update'),
      () => c.query('ALTER TABLE public.sources ENABLE TRIGGER quota_sources_update')],
    budget: [`- outage budget trigger`,
      () => c.query('ALTER TABLE public.upload_queue_payloads DISABLE TRIGGER upload_queue_payloads_count_delete'),
      () => c.query('ALTER TABLE public.upload_queue_payloads ENABLE TRIGGER upload_queue_payloads_count_delete')],
    counters: [`- event counters`, () => c.query(noCounter), () => c.query(fileSql(counterFile))],
    source: [`- source status update`, () => c.query(noSourceUpdate), () => c.query(fileSql(completeFile))],
    checks: [`- state-machine CHECKs (${checkDefs.length})`,
      async () => { for (const { conname } of checkDefs) await c.query(`ALTER TABLE public.upload_queue DROP CONSTRAINT ${pg.escapeIdentifier(conname)}`); },
      async () => { for (const { conname, def } of checkDefs) await c.query(`ALTER TABLE public.upload_queue ADD CONSTRAINT ${pg.escapeIdentifier(conname)} ${def}`); }],
    indexes: [`- secondary indexes (${indexDefs.length})`,
      async () => { for (const { name } of indexDefs) await c.query(`DROP INDEX ${name}`); },
      async () => { for (const { def } of indexDefs) await c.query(def); }],
  };
  const results = {};
  results.combined = await variant('one call per job (complete + claim)', async () => undefined, async () => undefined,
    'ours', script(COMBINED, 'combined'));
  for (const [key, [label, remove, restore]] of Object.entries(parts)) results[key] = await variant(label, remove, restore);
  results.all = await variant('all of the above',
    async () => { for (const [, remove] of Object.values(parts)) await remove(); },
    async () => { for (const [, , restore] of Object.values(parts)) await restore(); });

  await c.query(`CREATE SCHEMA bench_floor;
    CREATE TABLE bench_floor.jobs (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, run_at timestamptz NOT NULL,
      locked_at timestamptz, locked_by text, payload jsonb NOT NULL);
    CREATE INDEX ON bench_floor.jobs (run_at, id) WHERE locked_at IS NULL;`);
  results.floor = await other('floor: claim UPDATE + DELETE', 'floor', FLOOR);
  if (existsSync(pgmqSql)) {
    await c.query(readFileSync(pgmqSql, 'utf8'));
    await c.query(`SELECT pgmq.create('bench')`);
    results.pgmq = await other('PGMQ 1.5.1 read + delete', 'pgmq', PGMQ);
  } else {
    console.log(`PGMQ: ${pgmqSql} not found, skipped`);
  }
  await c.end();
} catch (err) {
  console.error(err);
  process.exitCode = 1;
} finally {
  await db.destroy();
}
