// Property test: whatever SQL clients run, the usage counters stay the truth. Several sessions at once run
// random operations over several users and plans: single and multi-row INSERT (… SELECT, ON CONFLICT), COPY,
// MERGE, UPDATE of size / owner / status, DELETE, TRUNCATE, heartbeats, timeout sweeps, billing-period rolls,
// inside transactions with savepoints and rollbacks. After every round (all sessions idle) the invariants hold:
//   total_bytes = SUM(file_size), total_sources = COUNT(*)                      (storage, per user)
//   interpretation_count_month = runs holding a unit of the current period
//                                + units of runs deleted or truncated in it      (interpretations, per user)
// and no counter is negative; at the end reconcile_storage_usage() finds no drift. Every failure names the
// seed; PROPERTY_SEED=<seed> replays it (the interleaving of sessions may differ, the operations do not), and
// PROPERTY_TRACE=1 prints every round's statements. Bounded by PROPERTY_SECONDS (25 in npm test); `npm run
// property` runs it for 5 minutes.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateUp } from '../../src/migrate.js';
import { throwawayCluster, type Throwaway } from './helpers/db.js';
import { seededRandom } from './helpers/seeded-random.mjs';

const SECONDS = Number(process.env.PROPERTY_SECONDS ?? 25);
const SEED = Number(process.env.PROPERTY_SEED ?? Math.floor(Math.random() * 2 ** 31));
const SESSIONS = 3;
const USERS = Array.from({ length: 6 }, (_, i) => `70000000-0000-4000-8000-${String(i + 1).padStart(12, '0')}`);
/**
 * Refusals a client may get and must survive: quota, file size, duplicate content, a source with runs, deadlocks,
 * and a heartbeat for a run another session has just deleted (P0002) or finished (55000).
 */
const EXPECTED = new Set(['PT402', 'PT413', '23505', '23503', '40P01', '23514', 'P0002', '55000']);

type Tally = Map<string, number>; // `${user}|${period_start}` → units of runs deleted in that period

/**
 * For runs a statement deletes (alias r): whether each held a unit of its user's current period, and that
 * period's start, read in the same statement.
 */
const HELD = `coalesce(r.quota_released_at IS NULL AND EXISTS (
    SELECT 1 FROM public.storage_usage su WHERE su.user_id = r.user_id AND su.billing_period_end > now()
       AND coalesce(r.quota_charged_at, r.created_at) >= su.billing_period_start
       AND coalesce(r.quota_charged_at, r.created_at) < su.billing_period_end), false) AS held,
  (SELECT su.billing_period_start::text FROM public.storage_usage su WHERE su.user_id = r.user_id) AS ps`;

interface Step {
  name: string;
  run(c: pg.ClientBase, tally: Tally): Promise<void>;
}

function operations(r: () => number): Array<[number, () => Step]> {
  const pick = <T>(xs: T[]): T => xs[Math.floor(r() * xs.length)]!;
  const size = (): number => (r() < 0.05 ? Math.floor(r() * 40_000) : Math.floor(r() * 6_000));
  const hash = (): string => createHash('sha256').update(String(r())).digest('hex');
  const user = (): string => pick(USERS);
  /** Adds, for the deleted runs the statement returned, one unit to their user's period tally. */
  type Deleted = { user_id: string; held: boolean; ps: string };
  const count = (tally: Tally, rows: Deleted[]): void => {
    for (const row of rows.filter((x) => x.held)) {
      const key = `${row.user_id}|${row.ps}`;
      tally.set(key, (tally.get(key) ?? 0) + 1);
    }
  };
  // which of a user's rows a step touches comes from the seed too (a number literal the test made, not input)
  const nth = (): number => Math.floor(r() * 3);
  const src = (k: number): string => `SELECT id FROM public.sources WHERE user_id = $1 ORDER BY content_hash LIMIT 1 OFFSET ${k}`;
  const run = (k: number, where = ''): string =>
    `SELECT id FROM public.interpretation_runs WHERE user_id = $1 ${where} ORDER BY id LIMIT 1 OFFSET ${k}`;
  return [
    [14, () => { const u = user(), h = hash(), s = size(); return { name: `insert source ${u}`, run: async (c) => {
      await c.query(`INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size) VALUES ($1, $2, 'x', 'k', $3)
                     ON CONFLICT (user_id, content_hash) DO NOTHING`, [u, h, s]); } }; }],
    [5, () => { const us = [user(), user()], n = 1 + Math.floor(r() * 4), seed = hash(); return { name: `insert ... select ${n}`, run: async (c) => {
      await c.query(`INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
                     SELECT ($1::uuid[])[1 + g % 2], encode(sha256(convert_to($2 || g, 'UTF8')), 'hex'), 'x', 'k', (g * 997) % 5000
                       FROM generate_series(1, $3::int) g`, [us, seed, n]); } }; }],
    [3, () => { const u = user(), rows = Array.from({ length: 1 + Math.floor(r() * 3) }, () => `${u}\t${hash()}\tx\tk\t${size()}\n`); return { name: `copy ${rows.length}`, run: async (c) => {
      await pipeline(Readable.from(rows), c.query(copyFrom(`COPY public.sources (user_id, content_hash, mime_type, storage_url, file_size) FROM STDIN`)));
    } }; }],
    [4, () => { const u = user(), s = size(); return { name: `merge ${u}`, run: async (c) => {
      await c.query(`MERGE INTO public.sources t USING (SELECT id FROM public.sources WHERE user_id = $1 ORDER BY content_hash LIMIT 1) s
                       ON t.id = s.id WHEN MATCHED THEN UPDATE SET file_size = $2`, [u, s]); } }; }],
    [6, () => { const u = user(), s = size(), k = nth(); return { name: `resize ${u}`, run: async (c) => {
      await c.query(`UPDATE public.sources SET file_size = $2 WHERE id = (${src(k)})`, [u, s]); } }; }],
    [3, () => { const u = user(), v = user(), k = nth(); return { name: `move source ${u} -> ${v}`, run: async (c) => {
      await c.query(`UPDATE public.sources SET user_id = $2 WHERE id = (${src(k)})`, [u, v]); } }; }],
    [5, () => { const u = user(), k = nth(); return { name: `delete source and its runs ${u}`, run: async (c, tally) => {
      const { rows } = await c.query<Deleted>(
        `WITH s AS (${src(k)}), runs AS (DELETE FROM public.interpretation_runs r WHERE r.source_id IN (SELECT id FROM s)
                    RETURNING r.user_id, ${HELD}), src AS (DELETE FROM public.sources WHERE id IN (SELECT id FROM s))
         SELECT user_id, held, ps FROM runs`, [u]);
      count(tally, rows); } }; }],
    [1, () => ({ name: 'truncate', run: async (c, tally) => {
      await c.query('LOCK TABLE public.sources, public.interpretation_runs IN ACCESS EXCLUSIVE MODE');
      const { rows } = await c.query<Deleted>(`SELECT r.user_id, ${HELD} FROM public.interpretation_runs r`);
      count(tally, rows);
      await c.query(r() < 0.5 ? 'TRUNCATE public.sources CASCADE' : 'TRUNCATE public.interpretation_runs');
    } })],
    [14, () => { const u = user(), n = r() < 0.8 ? 1 : 3, st = pick(['pending', 'running', 'completed']), k = nth(); return { name: `insert ${n} run(s) ${u}`, run: async (c) => {
      await c.query(`INSERT INTO public.interpretation_runs (user_id, source_id, interpretation_config, status)
                     SELECT $1, s.id, '{}', $3 FROM (${src(k)}) s, generate_series(1, $2::int)`, [u, n, st]); } }; }],
    [8, () => { const u = user(), st = pick(['pending', 'running', 'completed', 'failed']), k = nth(); return { name: `status ${st} ${u}`, run: async (c) => {
      const { rows } = await c.query<{ id: string; reopened: boolean }>(
        `WITH old AS (SELECT id, status FROM public.interpretation_runs WHERE id = (${run(k)}) FOR UPDATE)
         UPDATE public.interpretation_runs r SET status = $2 FROM old WHERE r.id = old.id
         RETURNING r.id, old.status IN ('completed', 'failed') AND $2 IN ('pending', 'running') AS reopened`, [u, st]);
      if (rows[0]?.reopened) {
        // a reopened run is charged again: it holds a unit of its user's current period
        const held = await c.query<{ held: boolean }>(
          `SELECT neotoma_ops.quota_run_holds_unit(user_id, quota_charged_at, quota_released_at, created_at) AS held
             FROM public.interpretation_runs WHERE id = $1`, [rows[0].id]);
        expect(held.rows[0]!.held, `seed ${SEED}: reopened run ${rows[0].id} holds no unit`).toBe(true);
      }
    } }; }],
    [4, () => { const u = user(), v = user(), k = nth(); return { name: `move run ${u} -> ${v}`, run: async (c) => {
      await c.query(`UPDATE public.interpretation_runs SET user_id = $2 WHERE id = (${run(k)})`, [u, v]); } }; }],
    [3, () => { const u = user(), k = nth(); return { name: `delete run ${u}`, run: async (c, tally) => {
      const { rows } = await c.query<Deleted>(
        `DELETE FROM public.interpretation_runs r WHERE r.id = (${run(k)}) RETURNING r.user_id, ${HELD}`, [u]);
      count(tally, rows); } }; }],
    [4, () => { const u = user(), k = nth(); return { name: `heartbeat ${u}`, run: async (c) => {
      await c.query(`SELECT public.heartbeat_interpretation(id) FROM (${run(k, `AND status IN ('pending', 'running')`)}) x`, [u]); } }; }],
    [5, () => { const u = user(), k = nth(); return { name: `expire and sweep ${u}`, run: async (c) => {
      await c.query(`UPDATE public.interpretation_runs SET timeout_at = now() - interval '1 minute'
                      WHERE id = (${run(k, `AND status IN ('pending', 'running')`)})`, [u]);
      await c.query('SELECT public.cleanup_stale_interpretations()'); } }; }],
    [2, () => { const u = user(), eager = r() < 0.5; return { name: `period passes for ${u}${eager ? ' (eager roll)' : ''}`, run: async (c) => {
      // what the user holds moves 45 days back and their stored period ends, with another anchor day (1..28),
      // so that the period the next write (or the hourly reset) rolls into starts on another day than the
      // last: units of runs deleted before are then in a closed period. The counter row is locked first, so no
      // concurrent charge slips between the two.
      await c.query(`SELECT 1 FROM public.storage_usage WHERE user_id = $1 FOR UPDATE`, [u]);
      await c.query(`SET LOCAL neotoma_ops.run_accounting = 'internal'`);
      await c.query(`UPDATE public.interpretation_runs SET created_at = created_at - interval '45 days',
                            quota_charged_at = coalesce(quota_charged_at, created_at) - interval '45 days',
                            quota_released_at = quota_released_at - interval '45 days' WHERE user_id = $1`, [u]);
      await c.query(`RESET neotoma_ops.run_accounting`);
      await c.query(`UPDATE public.storage_usage SET billing_period_end = now() - interval '1 second',
                            billing_period_start = now() - interval '1 second' - interval '1 month',
                            billing_anchor_day = billing_anchor_day % 28 + 1 WHERE user_id = $1`, [u]);
      if (eager) await c.query('SELECT public.reset_billing_periods()');
    } }; }],
  ];
}

async function check(c: pg.Client, tally: Tally, where: string): Promise<void> {
  // ended periods roll first (as the next write or the hourly job would): "this period" is now's
  await c.query(`SELECT neotoma_ops.quota_roll_periods(ARRAY(SELECT user_id FROM public.storage_usage), now())`);
  const { rows } = await c.query<{ user_id: string; bytes: string; total_bytes: string; n: string; total_sources: string; holders: number; count: number; ps: string }>(`
    SELECT su.user_id, su.total_bytes, su.total_sources, su.interpretation_count_month AS count, su.billing_period_start::text AS ps,
           (SELECT coalesce(sum(GREATEST(s.file_size, 0)), 0) FROM public.sources s WHERE s.user_id = su.user_id) AS bytes,
           (SELECT count(*) FROM public.sources s WHERE s.user_id = su.user_id) AS n,
           (SELECT count(*)::int FROM public.interpretation_runs r WHERE r.user_id = su.user_id AND r.quota_released_at IS NULL
              AND coalesce(r.quota_charged_at, r.created_at) >= su.billing_period_start
              AND coalesce(r.quota_charged_at, r.created_at) < su.billing_period_end) AS holders
      FROM public.storage_usage su WHERE su.user_id = ANY ($1) ORDER BY su.user_id`, [USERS]);
  for (const row of rows) {
    const deleted = tally.get(`${row.user_id}|${row.ps}`) ?? 0;
    expect(`${row.total_bytes}/${row.total_sources}`, `${where}: storage of ${row.user_id}`).toBe(`${row.bytes}/${row.n}`);
    expect(row.count, `${where}: interpretations of ${row.user_id} (holding ${row.holders}, deleted ${deleted})`).toBe(row.holders + deleted);
  }
}

describe('accounting under any SQL (property)', () => {
  let db: Throwaway;
  let sessions: pg.Client[] = [];
  let checker: pg.Client;

  beforeAll(async () => {
    db = await throwawayCluster();
    await migrateUp(db.url);
    checker = new pg.Client({ connectionString: db.url });
    await checker.connect();
    sessions = await Promise.all(Array.from({ length: SESSIONS }, async () => {
      const c = new pg.Client({ connectionString: db.url });
      await c.connect();
      return c;
    }));
    // plans and small limits, so that refusals happen
    for (const [i, u] of USERS.entries()) {
      await checker.query(`SELECT public.set_user_plan($1, $2)`, [u, ['free', 'pro', 'enterprise'][i % 3]]);
      if (i % 3 !== 2) {
        await checker.query(`UPDATE public.storage_usage SET storage_limit_bytes_override = 60000, max_file_bytes_override = 20000,
                                    interpretation_limit_month_override = 12 WHERE user_id = $1`, [u]);
      }
    }
  }, 120_000);

  afterAll(async () => {
    await Promise.all(sessions.map((s) => s.end().catch(() => undefined)));
    await checker?.end();
    await db?.destroy();
  });

  it(`holds its invariants after every round (seed ${SEED}, ${SECONDS} s)`, async () => {
    const r = seededRandom(SEED);
    const ops = operations(r);
    const total = ops.reduce((n, [w]) => n + w, 0);
    const nextStep = (): Step => {
      let x = r() * total;
      for (const [w, make] of ops) if ((x -= w) < 0) return make();
      return ops[0]![1]();
    };
    const tally: Tally = new Map();
    const deadline = Date.now() + SECONDS * 1000;
    const seen = new Map<string, number>();
    let round = 0;
    let committed = 0;
    while (Date.now() < deadline) {
      round += 1;
      // each session: a transaction of 1-3 steps, with a savepoint rolled back now and then, committed or rolled back
      const plans = sessions.map(() => {
        const steps = Array.from({ length: 1 + Math.floor(r() * 3) }, nextStep);
        return { steps, savepointAt: r() < 0.3 ? Math.floor(r() * steps.length) : -1, rollback: r() < 0.15 };
      });
      if (process.env.PROPERTY_TRACE) {
        console.info(`round ${round}: ${plans.map((p, i) => `[${i}] ${p.steps.map((x) => x.name).join('; ')}${p.savepointAt >= 0 ? ` sp@${p.savepointAt}` : ''}${p.rollback ? ' rollback' : ''}`).join(' | ')}`);
      }
      await Promise.all(sessions.map(async (c, i) => {
        const plan = plans[i]!;
        const mine: Tally = new Map(); // deleted units of this transaction, kept only if it commits
        const atSavepoint: Tally = new Map();
        let failed = false;
        await c.query('BEGIN');
        try {
          for (const [k, step] of plan.steps.entries()) {
            if (k === plan.savepointAt) {
              await c.query('SAVEPOINT sp');
              for (const [key, v] of mine) atSavepoint.set(key, v);
            }
            try {
              await step.run(c, mine);
            } catch (err) {
              const code = (err as { code?: string }).code ?? '';
              seen.set(code, (seen.get(code) ?? 0) + 1);
              if (!EXPECTED.has(code)) throw new Error(`seed ${SEED}, round ${round}, "${step.name}": ${code} ${(err as Error).message}`);
              failed = true;
              break;
            }
            seen.set(step.name.split(' ')[0]!, (seen.get(step.name.split(' ')[0]!) ?? 0) + 1);
          }
          if (!failed && plan.savepointAt >= 0 && r() < 0.5) {
            await c.query('ROLLBACK TO SAVEPOINT sp');
            mine.clear();
            for (const [key, v] of atSavepoint) mine.set(key, v);
          }
          if (failed || plan.rollback) {
            await c.query('ROLLBACK');
          } else {
            await c.query('COMMIT');
            committed += 1;
            for (const [key, v] of mine) tally.set(key, (tally.get(key) ?? 0) + v);
          }
        } catch (err) {
          await c.query('ROLLBACK').catch(() => undefined);
          throw err;
        }
      }));
      await check(checker, tally, `seed ${SEED}, after round ${round}`);
    }
    const fixed = await checker.query<{ n: number }>('SELECT public.reconcile_storage_usage() AS n');
    expect(fixed.rows[0]!.n, `seed ${SEED}: reconcile found drift`).toBe(0);
    console.info(`property: seed ${SEED}, ${round} rounds, ${committed} committed transactions; ${JSON.stringify(Object.fromEntries(seen))}`);
    expect(committed).toBeGreaterThan(round); // the rounds did real work
  }, (SECONDS + 120) * 1000);
});
