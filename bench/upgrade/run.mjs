// Upgrade benchmark (not a test): `migrate up` of a populated Neotoma v0.2.0 database while writers keep writing.
// Creates a Supabase-shaped throwaway cluster (migrations run as the non-superuser `postgres`; durable unless
// BENCH_FAST=1), loads tests/fixtures/neotoma-v0.2.0 with BENCH_USERS users × 10 sources × 10 runs
// (default 100,000 users: 1,000,000 sources and 1,000,000 runs), then, with BENCH_WRITERS sessions inserting a
// source and a run (and deleting one source in four) as fast as they can before, during and after it, runs the
// upgrade and reports:
//   total time and the time of each phase (migrations, SQL files, each deferred step);
//   every concurrent write's duration: count, p50, p99, max, and the longest while each phase ran;
//   WAL written by the whole upgrade (pg_current_wal_lsn before and after; writers' WAL included: run with
//   BENCH_WRITERS=0 for the upgrade's own);
//   whether every counter equals the truth afterwards;
//   the floor, side by side on the same data: one plain aggregate statement computing every user's counters
//   (no locks, no concurrency safety): the least any backfill can cost.
// Usage: npm run build && node bench/upgrade/run.mjs   (env: BENCH_USERS, BENCH_WRITERS=4, BENCH_FAST=1,
//        PG_BIN=<bin folder> for another server than Debian's PostgreSQL 15)
import { execFileSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, chmodSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const users = Number(process.env.BENCH_USERS ?? 100_000);
const writersN = Number(process.env.BENCH_WRITERS ?? 4);
const fast = process.env.BENCH_FAST === '1';
const { migrateUp } = await import(path.join(root, 'dist', 'migrate.js'));

const sh = (args) => execFileSync('bash', [path.join(root, 'scripts', 'pg-cluster.sh'), ...args], { encoding: 'utf8' }).trim();
const hash = (s) => createHash('sha256').update(s).digest('hex');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const pct = (sorted, p) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : 0);
const fixtureUser = (n) => {
  const h = n.toString(16);
  return `b${h.padStart(7, '0')}-0000-4000-8000-${h.padStart(12, '0')}`;
};

const work = mkdtempSync(path.join(os.tmpdir(), 'neotoma-bench-upgrade-'));
chmodSync(work, 0o755);
const dir = path.join(work, 'cluster');
sh(['init', dir, 'neotoma_bench', '--supabase', ...(fast ? ['--fast'] : [])]);
const url = sh(['start', dir]);
const adminUrl = sh(['admin-url', dir]);
const admin = new pg.Client({ connectionString: adminUrl });
await admin.connect();

try {
  const t0 = Date.now();
  execFileSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-v', `users=${users}`, '-v', 'files=10', '-v', 'runs=10',
    '-f', path.join(root, 'tests/fixtures/neotoma-v0.2.0/schema.sql'), '-f', path.join(root, 'tests/fixtures/neotoma-v0.2.0/data.sql'), url],
    { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, PGOPTIONS: '--client-min-messages=warning' } });
  await admin.query('VACUUM ANALYZE public.sources, public.interpretation_runs');
  await admin.query('CHECKPOINT');
  const size = (await admin.query(`SELECT (SELECT count(*) FROM public.sources) AS sources, (SELECT count(*) FROM public.interpretation_runs) AS runs,
                                          (SELECT count(DISTINCT user_id) FROM public.sources) AS users,
                                          pg_size_pretty(pg_database_size(current_database())) AS db`)).rows[0];
  console.log(`fixture: ${size.sources} sources, ${size.runs} runs, ${size.users} users, database ${size.db} (loaded in ${((Date.now() - t0) / 1000).toFixed(0)} s)`);

  // --- writers ---------------------------------------------------------------------------------------------
  const events = []; // [endMs, durationMs]
  const errors = [];
  let stop = false;
  const pickUsers = [...Array.from({ length: 2000 }, (_, k) => fixtureUser(1 + k * 37)), ...Array.from({ length: 500 }, () => randomUUID())];
  async function writer(w) {
    const c = new pg.Client({ connectionString: url, application_name: `bench writer ${w}` });
    await c.connect();
    const timed = async (fn) => {
      const s = performance.now();
      try { return await fn(); } finally { const e = performance.now(); events.push([e, e - s]); }
    };
    try {
      for (let i = 0; !stop; i++) {
        const u = pickUsers[(i * writersN + w) % pickUsers.length];
        try {
          const h = hash(`${u}/${w}/${i}/${randomUUID()}`);
          const { rows } = await timed(() => c.query(
            `INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size) VALUES ($1::uuid, $2::text, 'text/plain', $1::text || '/' || $2::text, $3) RETURNING id`,
            [u, h, 1000 + (i % 997)]));
          if (i % 4 === 3) await timed(() => c.query('DELETE FROM public.sources WHERE id = $1', [rows[0].id]));
          else await timed(() => c.query(`INSERT INTO public.interpretation_runs (user_id, source_id, interpretation_config, status) VALUES ($1, $2, '{}', 'completed')`, [u, rows[0].id]));
        } catch (err) {
          errors.push(`${err.code ?? '?'} ${err.message}`);
          if (errors.length > 100) stop = true;
        }
      }
    } finally {
      await c.end();
    }
  }
  const lsn = async () => (await admin.query('SELECT pg_current_wal_lsn() AS l')).rows[0].l;
  const walBetween = async (a, b) => Number((await admin.query('SELECT pg_wal_lsn_diff($2, $1) AS d', [a, b])).rows[0].d);

  // WAL of the writers alone, over a window as long as the upgrade will be (measured after it, see below)
  stop = false;
  const writers = Array.from({ length: writersN }, (_, w) => writer(w));
  await sleep(2000);
  const lsnBefore = await lsn();
  const phases = [];
  let phaseStart = performance.now();
  let phaseName = 'start';
  const tick = (line) => {
    const now = performance.now();
    const m = /^(applying migration|running deferred step:|applied) (.*)$/.exec(line);
    const name = m ? (m[1] === 'applied' ? 'sql files' : m[1] === 'applying migration' ? `migration ${m[2]}` : `deferred: ${m[2]}`) : null;
    if (name && name !== phaseName) {
      phases.push({ name: phaseName, start: phaseStart, end: now });
      phaseName = name;
      phaseStart = now;
    }
  };
  const upStart = performance.now();
  const result = await migrateUp(url, { log: tick });
  const upEnd = performance.now();
  phases.push({ name: phaseName, start: phaseStart, end: upEnd });
  const lsnAfter = await lsn();
  await sleep(2000);
  stop = true;
  await Promise.all(writers);

  // the writers alone, for the same duration, to separate their WAL from the upgrade's
  stop = false;
  const eventsBefore = events.length;
  const writers2 = Array.from({ length: writersN }, (_, w) => writer(w));
  const lsnW0 = await lsn();
  await sleep(upEnd - upStart);
  const lsnW1 = await lsn();
  stop = true;
  await Promise.all(writers2);
  const writesAlone = events.length - eventsBefore;

  const during = events.slice(0, eventsBefore).filter(([end, d]) => end - d >= upStart - 1 && end - d <= upEnd);
  const all = events.slice(0, eventsBefore).map(([, d]) => d).sort((a, b) => a - b);
  const dur = during.map(([, d]) => d).sort((a, b) => a - b);
  const totalS = (upEnd - upStart) / 1000;
  console.log(`\nupgrade: ${totalS.toFixed(1)} s total; ${result.migrations.length} migrations, ${result.sqlFiles.length} SQL files, ${result.deferredSteps.length} deferred steps; warnings: ${result.warnings.length}`);
  for (const p of phases.filter((p) => p.name !== 'start')) {
    const worst = events.filter(([end, d]) => end >= p.start && end - d <= p.end).reduce((m, [, d]) => Math.max(m, d), 0);
    console.log(`  ${((p.end - p.start) / 1000).toFixed(2).padStart(7)} s  ${p.name.padEnd(72)} longest concurrent write ${worst.toFixed(0)} ms`);
  }
  console.log(`writes during the upgrade: ${dur.length}; p50 ${pct(dur, 50).toFixed(1)} ms, p99 ${pct(dur, 99).toFixed(1)} ms, max ${pct(dur, 100).toFixed(0)} ms`);
  console.log(`writes over the whole run: ${all.length}; max ${pct(all, 100).toFixed(0)} ms; errors: ${errors.length}${errors.length ? ` (${errors[0]})` : ''}`);
  const walUp = await walBetween(lsnBefore, lsnAfter);
  const walWriters = await walBetween(lsnW0, lsnW1);
  console.log(`WAL during the upgrade: ${(walUp / 1048576).toFixed(1)} MiB; the writers alone over as long: ${(walWriters / 1048576).toFixed(1)} MiB (${writesAlone} writes); upgrade's own ≈ ${((walUp - walWriters) / 1048576).toFixed(1)} MiB`);

  // --- exactness ----------------------------------------------------------------------------------------------
  const wrong = (await admin.query(`
    WITH truth AS (SELECT user_id, sum(file_size) AS bytes, count(*) AS n FROM public.sources GROUP BY user_id)
    SELECT count(*) AS n FROM truth t LEFT JOIN public.storage_usage su ON su.user_id = t.user_id
     WHERE su.user_id IS NULL OR su.total_bytes <> t.bytes OR su.total_sources <> t.n`)).rows[0].n;
  const wrongRuns = (await admin.query(`
    SELECT count(*) AS n FROM public.storage_usage su
     WHERE su.interpretation_count_month <> (SELECT count(*) FROM public.interpretation_runs r WHERE r.user_id = su.user_id
             AND r.quota_released_at IS NULL AND coalesce(r.quota_charged_at, r.created_at) >= su.billing_period_start
             AND coalesce(r.quota_charged_at, r.created_at) < su.billing_period_end)`)).rows[0].n;
  console.log(`counters afterwards: ${wrong} user(s) with storage counters off, ${wrongRuns} with interpretation counts off`);

  // --- the floor ------------------------------------------------------------------------------------------------
  const f0 = performance.now();
  await admin.query(`CREATE TEMP TABLE floor AS
    SELECT s.user_id, sum(s.file_size) AS bytes, count(*) AS n, min(s.created_at) AS first_at FROM public.sources s GROUP BY s.user_id`);
  const f1 = performance.now();
  console.log(`floor, same data: one aggregate statement over every source (no locks, no concurrency safety): ${((f1 - f0) / 1000).toFixed(2)} s`);
  const backfill = phases.find((p) => p.name.startsWith('deferred: create the usage counters'));
  if (backfill) console.log(`the backfill step itself: ${((backfill.end - backfill.start) / 1000).toFixed(2)} s (${((backfill.end - backfill.start) / (f1 - f0)).toFixed(1)}x the floor)`);
  const server = (await admin.query(`SELECT current_setting('server_version') AS v`)).rows[0].v;
  console.log(`machine: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; PostgreSQL ${server}; cluster: Supabase-shaped, ${fast ? 'fsync off' : 'durable (fsync on)'}`);
} finally {
  await admin.end().catch(() => undefined);
  try { sh(['destroy', dir]); } catch { /* best effort */ }
  rmSync(work, { recursive: true, force: true });
}
