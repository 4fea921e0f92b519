// Quota benchmark (not a test). Creates a throwaway cluster, migrates it, and measures:
//  A. single-row inserts into sources with the quota triggers vs an identical table without them, and vs a
//     third copy with only the cheapest possible per-insert counter write (the "counter floor"),
//     8 writers spread over 10,000 users (alternating rounds, same run);
//  B. 16 writers inserting for ONE user (all serialised on its counter row), then checks exactness;
//  C. reset_billing_periods() over N users whose period has ended: total time, longest call (= transaction),
//     and the worst latency seen meanwhile by a session inserting sources for other users.
// Usage: npm run build && node bench/quota/run.mjs   (env: PG_BIN=<bin folder> for another server than
//        Debian's PostgreSQL 15, e.g. 17 from ../shared/tools/postgres17/build.sh; BENCH_SECONDS=10, BENCH_RESET_USERS=1000000,
//        BENCH_FAST=1 for fsync=off, BENCH_BATCH=10000 as the hourly job,
//        BENCH_ROUNDS=5 alternating rounds, BENCH_PARTS=spread,cpu,one,reset to run only some parts)
import { execFileSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, chmodSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const seconds = Number(process.env.BENCH_SECONDS ?? 10);
const resetUsers = Number(process.env.BENCH_RESET_USERS ?? 1_000_000);
const batch = Number(process.env.BENCH_BATCH ?? 10_000);
const fast = process.env.BENCH_FAST === '1';
const parts = new Set((process.env.BENCH_PARTS ?? 'spread,cpu,one,reset').split(','));
const rounds = Number(process.env.BENCH_ROUNDS ?? 5);

const sh = (args) => execFileSync('bash', [path.join(root, 'scripts', 'pg-cluster.sh'), ...args], { encoding: 'utf8' }).trim();
const hash = (s) => createHash('sha256').update(s).digest('hex');

const work = mkdtempSync(path.join(os.tmpdir(), 'neotoma-bench-'));
chmodSync(work, 0o755);
const dir = path.join(work, 'cluster');
sh(['init', dir, 'neotoma_bench', ...(fast ? ['--fast'] : [])]);
const url = sh(['start', dir]);
const results = {};
let server = '?';
try {
  execFileSync(process.execPath, [path.join(root, 'dist', 'cli.js'), 'migrate', 'up'], { env: { ...process.env, DATABASE_URL: url }, stdio: 'ignore' });
  const pool = new pg.Pool({ connectionString: url, max: 24 });
  server = (await pool.query(`SELECT current_setting('server_version') AS v`)).rows[0].v;
  await pool.query(`CREATE TABLE public.sources_bare (LIKE public.sources INCLUDING ALL)`);
  // The floor of any design that writes a per-user counter row on each insert: a row-level trigger doing one
  // plain UPDATE (no limit check, no plan lookup, no transition table, no bulk handling, no missing-row case).
  // Not a usable quota; it shows how much of the gap is the counter write itself.
  await pool.query(`CREATE TABLE public.sources_counter_floor (LIKE public.sources INCLUDING ALL)`);
  await pool.query(`CREATE TABLE public.bench_counter_floor AS SELECT user_id, 0::bigint AS total_bytes, 0::bigint AS total_sources
                      FROM public.storage_usage WITH NO DATA`);
  await pool.query(`ALTER TABLE public.bench_counter_floor ADD PRIMARY KEY (user_id), SET (fillfactor = 80)`);
  await pool.query(`CREATE FUNCTION public.bench_counter_floor_trg() RETURNS trigger LANGUAGE plpgsql AS $$
                      BEGIN
                        UPDATE public.bench_counter_floor AS c
                           SET total_bytes = c.total_bytes + NEW.file_size, total_sources = c.total_sources + 1
                         WHERE c.user_id = NEW.user_id;
                        RETURN NULL;
                      END $$`);
  await pool.query(`CREATE TRIGGER bench_counter_floor AFTER INSERT ON public.sources_counter_floor
                      FOR EACH ROW EXECUTE FUNCTION public.bench_counter_floor_trg()`);
  const users = Array.from({ length: 10_000 }, () => randomUUID());
  await pool.query(`INSERT INTO public.storage_usage (user_id, plan_id) SELECT unnest($1::uuid[]), 'pro'`, [users]);
  await pool.query(`INSERT INTO public.bench_counter_floor (user_id) SELECT unnest($1::uuid[])`, [users]);

  let seq = 0;
  async function writers(n, table, pickUser, secs) {
    const deadline = Date.now() + secs * 1000;
    const counts = await Promise.all(
      Array.from({ length: n }, async () => {
        const c = await pool.connect();
        let done = 0;
        try {
          while (Date.now() < deadline) {
            const u = pickUser();
            const h = hash(`${u}-${seq++}`);
            await c.query(
              `INSERT INTO public.${table} (user_id, content_hash, mime_type, storage_url, file_size) VALUES ($1, $2, 'application/pdf', $3, $4)`,
              [u, h, `${u}/${h}`, 1000 + (seq % 5000)],
            );
            done++;
          }
        } finally {
          c.release();
        }
        return done;
      }),
    );
    return counts.reduce((a, b) => a + b, 0) / secs;
  }

  const spread = () => users[Math.floor(Math.random() * users.length)];
  if (parts.has('spread')) {
    // A: 8 writers over 10,000 users, short alternating rounds bare / with triggers, so that a change of
    // background load hits both tables alike; the median of the per-round ratios is the figure reported
    const bare = [];
    const trig = [];
    const floor = [];
    const ratios = [];
    const floorRatios = [];
    await writers(8, 'sources', spread, 2); // warm-up
    await writers(8, 'sources_bare', spread, 2);
    await writers(8, 'sources_counter_floor', spread, 2);
    for (let round = 0; round < rounds; round++) {
      const b = await writers(8, 'sources_bare', spread, seconds / rounds);
      const t = await writers(8, 'sources', spread, seconds / rounds);
      const f = await writers(8, 'sources_counter_floor', spread, seconds / rounds);
      bare.push(b);
      trig.push(t);
      floor.push(f);
      ratios.push(t / b);
      floorRatios.push(f / b);
    }
    const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    results.spread = {
      bare_per_s: Math.round(mean(bare)), quota_per_s: Math.round(mean(trig)),
      ratio_of_means: +(mean(trig) / mean(bare)).toFixed(3), median_round_ratio: +median(ratios).toFixed(3),
      round_ratios: ratios.map((r) => +r.toFixed(2)),
      counter_floor_per_s: Math.round(mean(floor)), counter_floor_median_round_ratio: +median(floorRatios).toFixed(3),
      counter_floor_round_ratios: floorRatios.map((r) => +r.toFixed(2)),
    };
  }
  // CPU per insert inside the server, no client round trip: a DO loop of 5,000 single-row inserts for
  // distinct users into each table (best of 3 loops, each one transaction)
  if (parts.has('cpu')) {
    const us = {};
    for (const table of ['sources_bare', 'sources']) {
      let best = Infinity;
      for (let rep = 0; rep < 3; rep++) {
        const c = await pool.connect();
        try {
          await c.query(`DO $$
            DECLARE t0 timestamptz := clock_timestamp(); u uuid[] := ARRAY(SELECT user_id FROM public.storage_usage LIMIT 5000);
            BEGIN
              FOR i IN 1..5000 LOOP
                INSERT INTO public.${table} (user_id, content_hash, mime_type, storage_url, file_size)
                VALUES (u[i], md5(random()::text) || md5(random()::text), 'application/pdf', 'k', 1000 + i);
              END LOOP;
              PERFORM set_config('bench.us', (extract(epoch FROM clock_timestamp() - t0) * 1e6 / 5000)::text, false);
            END $$`);
          const { rows } = await c.query(`SELECT current_setting('bench.us')::float8 AS us`);
          best = Math.min(best, rows[0].us);
        } finally {
          c.release();
        }
      }
      us[table] = +best.toFixed(1);
    }
    results.cpu_us_per_insert = { bare: us.sources_bare, quota: us.sources, trigger_cost: +(us.sources - us.sources_bare).toFixed(1) };
  }
  if (parts.has('one')) {
  // B: 16 writers on one user
  const one = users[0];
  const bareOne = await writers(16, 'sources_bare', () => one, seconds / 2);
  const oneRate = await writers(16, 'sources', () => one, seconds / 2);
  const { rows: chk } = await pool.query(
    `SELECT su.total_bytes = s.b AND su.total_sources = s.n AS exact FROM public.storage_usage su,
       (SELECT coalesce(sum(file_size), 0) b, count(*) n FROM public.sources WHERE user_id = $1) s WHERE su.user_id = $1`,
    [one],
  );
  results.one_user = { bare_per_s: Math.round(bareOne), quota_per_s: Math.round(oneRate), exact: chk[0].exact };

  }
  if (parts.has('reset')) {
  // C: reset_billing_periods over N users whose period has ended
  const t0 = Date.now();
  for (let done = 0; done < resetUsers; done += 100_000) {
    await pool.query(
      `INSERT INTO public.storage_usage (user_id, billing_anchor_day, billing_period_start, billing_period_end, billing_month, interpretation_count_month)
       SELECT gen_random_uuid(), 1 + (i % 28), b.period_start, b.period_end, to_char(b.period_start AT TIME ZONE 'UTC', 'YYYY-MM'), i % 50
         FROM generate_series(1, $1) i, LATERAL public.billing_period_bounds(1 + (i % 28), now() - interval '40 days') b`,
      [Math.min(100_000, resetUsers - done)],
    );
  }
  await pool.query('VACUUM ANALYZE public.storage_usage');
  const setupS = (Date.now() - t0) / 1000;
  let stop = false;
  let maxInsertMs = 0;
  let probeInserts = 0;
  const probe = (async () => {
    const c = await pool.connect();
    try {
      while (!stop) {
        const u = spread();
        const h = hash(`${u}-probe-${seq++}`);
        const s = performance.now();
        await c.query(`INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size) VALUES ($1, $2, 'text/plain', 'k', 10)`, [u, h]);
        maxInsertMs = Math.max(maxInsertMs, performance.now() - s);
        probeInserts++;
      }
    } finally {
      c.release();
    }
  })();
  const r0 = performance.now();
  let maxCallMs = 0;
  let sumCallMs = 0;
  let calls = 0;
  let rolled = 0;
  for (;;) {
    const s = performance.now();
    const { rows } = await pool.query('SELECT public.reset_billing_periods($1) AS n', [batch]);
    maxCallMs = Math.max(maxCallMs, performance.now() - s);
    sumCallMs += performance.now() - s;
    calls++;
    rolled += rows[0].n;
    if (rows[0].n === 0) break;
  }
  const totalS = (performance.now() - r0) / 1000;
  stop = true;
  await probe;
  const { rows: periods } = await pool.query('SELECT count(*)::int AS n FROM public.usage_periods');
  results.reset = {
    users: resetUsers, setup_s: +setupS.toFixed(1), batch, calls, rolled, total_s: +totalS.toFixed(1),
    longest_call_ms: Math.round(maxCallMs), mean_call_ms: Math.round(sumCallMs / calls), usage_periods_rows: periods[0].n,
    concurrent_inserts: probeInserts, worst_concurrent_insert_ms: Math.round(maxInsertMs),
  };
  }
  await pool.end();
} finally {
  try { sh(['destroy', dir]); } catch { /* already gone */ }
  rmSync(work, { recursive: true, force: true });
}
console.log(JSON.stringify({ machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model }, server, fsync: !fast, seconds, ...results }, null, 2));
