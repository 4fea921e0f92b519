// Cost that does not grow with history (see docs/benchmarks.md, "Deep queues and long history").
//   npm run build && node bench/scale/history.mjs [--scale 1] [--samples 2000]
// One throwaway PostgreSQL 15 cluster (fsync off, pg_cron jobs unscheduled), grown step by step; after each
// load the tables are VACUUM ANALYZEd (as autovacuum would) and measured, client-side, one statement at a time:
//   quota-checked insert: a single-row INSERT INTO sources for an existing user (the quota trigger's counter
//     update included), with 10,000 sources over 1,000 users, then with 10,000,000 over 1,000,000;
//   claim + complete: claim_upload_jobs(1) then complete_upload_job for it, with 10,000 due jobs, then with
//     10,000 due jobs and 10,000,000 completed rows (history before pruning), then with 1,000,000 due jobs.
// --scale divides every size (0.01 for a quick try).
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';

const { root, database } = await import('../lib/upload-fixtures.mjs');
const { migrateUp } = await import(path.join(root, 'dist', 'migrate.js'));
const { values } = parseArgs({ options: { scale: { type: 'string', default: '1' }, samples: { type: 'string', default: '2000' } } });
const S = Number(values.scale);
const SAMPLES = Number(values.samples);
const n = (x) => Math.max(1, Math.round(x * S));
const CHUNK = 500_000;

const db = await database();
const c = new pg.Client({ connectionString: db.url });
const q = (sql, args) => c.query(sql, args);
const uid = (expr) => `('00000000-0000-4000-8000-' || lpad(to_hex(${expr}), 12, '0'))::uuid`;
let sourcesLoaded = 0;

async function timed(label, fn) {
  const t0 = performance.now();
  await fn();
  console.log(`  (${label}: ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
}

/**
 * Sources up to `total`, spread over `users` users (source g belongs to user g mod users), 1,000 bytes each. Bulk
 * loaded with the triggers off (session_replication_role = replica, as a restore does), then each user's counter
 * row written from the sums, as neotoma_ops.quota_usage_rows_create would make it (born true).
 */
async function loadSources(total, users) {
  await timed(`load sources to ${total} over ${users} users`, async () => {
    await q(`SET session_replication_role = replica`);
    for (let from = sourcesLoaded + 1; from <= total; from += CHUNK) {
      const to = Math.min(total, from + CHUNK - 1);
      await q(`INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
               SELECT ${uid(`g % ${users}`)}, encode(sha256(int8send(g)), 'hex'), 'text/plain', 'x', 1000
                 FROM generate_series(${from}::bigint, ${to}::bigint) AS g`);
    }
    await q(`RESET session_replication_role`);
    await q(`INSERT INTO public.storage_usage AS u (user_id, total_bytes, total_sources)
             SELECT user_id, sum(file_size), count(*) FROM public.sources GROUP BY user_id
             ON CONFLICT (user_id) DO UPDATE SET total_bytes = EXCLUDED.total_bytes, total_sources = EXCLUDED.total_sources`);
    sourcesLoaded = total;
    await q('VACUUM ANALYZE public.sources, public.storage_usage');
  });
}

/** Due jobs on sources g = from .. from + count - 1 (each source has at most one open job). */
async function loadDue(from, count) {
  await timed(`load ${count} due jobs`, async () => {
    for (let done = 0; done < count; done += CHUNK) {
      const k = Math.min(CHUNK, count - done);
      await q(`WITH s AS (SELECT s.id, s.user_id, s.content_hash
                            FROM generate_series(${from + done}::bigint, ${from + done + k - 1}::bigint) AS g
                            JOIN public.sources s ON s.content_hash = encode(sha256(int8send(g)), 'hex')),
                    j AS (INSERT INTO public.upload_queue (user_id, source_id, storage_path, content_hash, byte_size, mime_type, next_retry_at)
                          SELECT user_id, id, user_id::text || '/' || content_hash, content_hash, 1, 'text/plain', now() - interval '1 minute' FROM s
                          RETURNING id)
               INSERT INTO public.upload_queue_payloads (job_id, content) SELECT id, '\\x00'::bytea FROM j`);
    }
    await q('VACUUM ANALYZE public.upload_queue, public.upload_queue_payloads');
  });
}

/** `count` completed jobs (history not yet pruned), one per existing source. */
async function loadCompleted(count) {
  await timed(`load ${count} completed jobs`, async () => {
    await q(`INSERT INTO public.upload_queue (user_id, source_id, storage_path, content_hash, byte_size, mime_type, status,
                                              retry_count, completed_at, created_at, updated_at)
             SELECT s.user_id, s.id, 'x', s.content_hash, 1, 'text/plain', 'completed', 1, now() - interval '1 hour',
                    now() - interval '2 hours', now() - interval '1 hour'
               FROM public.sources s LIMIT ${count}`);
    await q('VACUUM ANALYZE public.upload_queue');
  });
}

/**
 * Settled, as a database is between bulk loads: the load's checkpoint done and no autovacuum of its tables
 * running under the samples (waits up to 10 minutes; the waits are printed).
 */
async function settle() {
  await q('CHECKPOINT');
  const t0 = performance.now();
  for (;;) {
    const { rows } = await q(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'`);
    if (rows[0].n === 0 || performance.now() - t0 > 600_000) break;
    await new Promise((r) => setTimeout(r, 1000));
  }
  const waited = (performance.now() - t0) / 1000;
  if (waited > 1) console.log(`    (waited ${waited.toFixed(0)} s for autovacuum to finish)`);
}

const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };

async function insertCost(users) {
  await settle();
  const times = [];
  for (let i = 0; i < SAMPLES; i++) {
    const user = `00000000-0000-4000-8000-${(Math.floor(Math.random() * users)).toString(16).padStart(12, '0')}`;
    const hash = (await q(`SELECT encode(sha256(convert_to($1, 'UTF8')), 'hex') AS h`, [`p-${Date.now()}-${i}-${Math.random()}`])).rows[0].h;
    const t0 = performance.now();
    await q(`INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size) VALUES ($1::uuid, $2, 'text/plain', 'x', 1000)`, [user, hash]);
    times.push(performance.now() - t0);
  }
  return { p50: pct(times, 0.5), p99: pct(times, 0.99) };
}

async function claimCompleteCost() {
  const times = [];
  const claims = [];
  const completes = [];
  await settle();
  const due = (await q(`SELECT count(*)::int AS k FROM public.upload_queue WHERE status = 'pending'`)).rows[0].k;
  for (let i = 0; i < Math.min(SAMPLES, Math.floor(due / 2)); i++) {
    const t0 = performance.now();
    const { rows } = await q(`SELECT job_id, lease_token FROM public.claim_upload_jobs('bench', 1)`);
    const t1 = performance.now();
    await q('SELECT public.complete_upload_job($1, $2)', [rows[0].job_id, rows[0].lease_token]);
    const t2 = performance.now();
    times.push(t2 - t0);
    claims.push(t1 - t0);
    completes.push(t2 - t1);
  }
  console.log(`    (claim p50 ${pct(claims, 0.5).toFixed(3)} ms, complete p50 ${pct(completes, 0.5).toFixed(3)} ms)`);
  return { p50: pct(times, 0.5), p99: pct(times, 0.99) };
}

const show = (label, r, base) =>
  console.log(`${label.padEnd(62)} p50 ${r.p50.toFixed(3)} ms  p99 ${r.p99.toFixed(3)} ms${base ? `   ratio p50 ${(r.p50 / base.p50).toFixed(2)}, p99 ${(r.p99 / base.p99).toFixed(2)}` : ''}`);

try {
  await migrateUp(db.url, { log: () => undefined });
  await c.connect();
  await q('SELECT cron.unschedule(jobid) FROM cron.job');
  const { rows } = await q(`SELECT current_setting('server_version') AS v, current_setting('shared_buffers') AS sb`);
  console.log(`PostgreSQL ${rows[0].v} (shared_buffers ${rows[0].sb}), node ${process.version}, ${os.cpus().length} CPUs, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, load ${os.loadavg()[0].toFixed(2)}; ${SAMPLES} samples each, scale ${S}`);

  await loadSources(n(10_000), n(1_000));
  const insSmall = await insertCost(n(1_000));
  show(`quota-checked insert, ${n(10_000)} sources / ${n(1_000)} users`, insSmall);
  await loadDue(1, n(10_000));
  const ccSmall = await claimCompleteCost();
  show(`claim + complete, ${n(10_000)} due jobs`, ccSmall);

  await loadSources(n(10_000_000), n(1_000_000));
  const insBig = await insertCost(n(1_000_000));
  show(`quota-checked insert, ${n(10_000_000)} sources / ${n(1_000_000)} users`, insBig, insSmall);

  await q(`UPDATE public.upload_queue SET next_retry_at = now() - interval '1 minute' WHERE status = 'pending'`);
  await loadDue(n(10_000) + 1, n(10_000) - (await q(`SELECT count(*)::int AS k FROM public.upload_queue WHERE status = 'pending'`)).rows[0].k);
  await loadCompleted(n(10_000_000));
  const ccHistory = await claimCompleteCost();
  show(`claim + complete, ${n(10_000)} due jobs + ${n(10_000_000)} completed rows`, ccHistory, ccSmall);

  await loadDue(n(20_000) + 1, n(1_000_000));
  const ccDeep = await claimCompleteCost();
  show(`claim + complete, ${n(1_000_000)} due jobs (+ history)`, ccDeep, ccSmall);
  const sizes = (await q(`SELECT pg_size_pretty(pg_total_relation_size('public.upload_queue')) AS queue,
                                  pg_size_pretty(pg_relation_size('public.upload_queue_claim_idx')) AS claim_idx,
                                  pg_size_pretty(pg_total_relation_size('public.sources')) AS sources,
                                  pg_size_pretty(pg_database_size(current_database())) AS db`)).rows[0];
  console.log(`sizes: upload_queue ${sizes.queue} (claim index ${sizes.claim_idx}), sources ${sizes.sources}, database ${sizes.db}`);
} finally {
  await c.end().catch(() => undefined);
  await db.destroy();
}
