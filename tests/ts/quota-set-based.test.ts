// Set-based quota paths across sessions: the sweep's batch refund racing interpretation inserts of the same
// user ends exact, and reset_billing_periods() never waits behind a writer holding a due user's counter row.
import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { client } from './helpers/db.js';

let admin: pg.Client;
let writers: pg.Client[];

beforeAll(async () => {
  admin = await client();
  writers = await Promise.all(Array.from({ length: 4 }, () => client()));
  for (const c of [admin, ...writers]) await c.query("SET statement_timeout = '20s'");
});

afterEach(async () => {
  await Promise.all(writers.map((c) => c.query('ROLLBACK').catch(() => undefined)));
});

afterAll(async () => {
  await Promise.all([admin, ...writers].map((c) => c?.end()));
});

async function userWithSource(): Promise<{ userId: string; sourceId: string }> {
  const userId = randomUUID();
  const hash = randomUUID().replaceAll('-', '').repeat(2);
  await admin.query(`INSERT INTO public.storage_usage (user_id, plan_id, interpretation_limit_month_override)
                     VALUES ($1, 'free', 100000)`, [userId]);
  const { rows } = await admin.query<{ id: string }>(
    `INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
     VALUES ($1::uuid, $2, 'text/plain', $1::text || '/' || $2, 10) RETURNING id`,
    [userId, hash],
  );
  return { userId, sourceId: rows[0]!.id };
}

async function used(userId: string): Promise<number> {
  const { rows } = await admin.query<{ n: number }>(
    'SELECT interpretation_count_month AS n FROM public.storage_usage WHERE user_id = $1',
    [userId],
  );
  return rows[0]!.n;
}

describe('set-based quota refund and roll against concurrent sessions', () => {
  it('a sweep refunding 100 runs of a user while 4 sessions insert 100 more runs for that user ends exact', async () => {
    const { userId, sourceId } = await userWithSource();
    await admin.query(
      `INSERT INTO public.interpretation_runs (user_id, source_id, interpretation_config, status)
       SELECT $1, $2, '{}', 'running' FROM generate_series(1, 200)`,
      [userId, sourceId],
    );
    await admin.query(
      `UPDATE public.interpretation_runs SET timeout_at = now() - interval '1 minute'
        WHERE id IN (SELECT id FROM public.interpretation_runs WHERE user_id = $1 LIMIT 100)`,
      [userId],
    );
    expect(await used(userId)).toBe(200);

    const inserts = writers.map(async (c) => {
      for (let i = 0; i < 25; i++) {
        await c.query(
          `INSERT INTO public.interpretation_runs (user_id, source_id, interpretation_config, status)
           VALUES ($1, $2, '{}', 'pending')`,
          [userId, sourceId],
        );
      }
    });
    // another test file may hold the sweep's advisory lock for a moment: sweep until our runs are all failed
    const sweep = (async () => {
      for (let attempt = 0; attempt < 100; attempt++) {
        await admin.query('SELECT public.cleanup_stale_interpretations()');
        const { rows } = await admin.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM public.interpretation_runs
            WHERE user_id = $1 AND error_message = 'Timeout - no heartbeat'`,
          [userId],
        );
        if (rows[0]!.n === 100) return;
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    await Promise.all([...inserts, sweep]);

    const { rows } = await admin.query<{ failed: number; total: number }>(
      `SELECT count(*) FILTER (WHERE status = 'failed')::int AS failed, count(*)::int AS total
         FROM public.interpretation_runs WHERE user_id = $1`,
      [userId],
    );
    expect(rows[0]).toEqual({ failed: 100, total: 300 });
    // 200 counted + 100 inserted - 100 refunded, no lost update either way
    expect(await used(userId)).toBe(200);
  });

  it('reset_billing_periods skips a due user whose counter row a writer holds, without waiting', async () => {
    const { userId } = await userWithSource();
    // the user's period ended 40 days ago
    await admin.query(
      `UPDATE public.storage_usage su SET interpretation_count_month = 3,
              (billing_period_start, billing_period_end, billing_month) =
              (SELECT b.period_start, b.period_end, to_char(b.period_start AT TIME ZONE 'UTC', 'YYYY-MM')
                 FROM public.billing_period_bounds(su.billing_anchor_day, now() - interval '40 days') b)
        WHERE su.user_id = $1`,
      [userId],
    );
    const w = writers[0]!;
    await w.query('BEGIN');
    // the write rolls the period lazily and keeps the counter row locked until COMMIT
    await w.query(
      `INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
       VALUES ($1, repeat('e', 64), 'text/plain', 'k', 10)`,
      [userId],
    );
    const t0 = performance.now();
    await admin.query("SET lock_timeout = '3s'");
    await admin.query('SELECT public.reset_billing_periods(10000)');
    await admin.query('RESET lock_timeout');
    expect(performance.now() - t0).toBeLessThan(3000);
    await w.query('COMMIT');

    const { rows } = await admin.query<{ periods: number; current: boolean; n: number }>(
      `SELECT (SELECT count(*)::int FROM public.usage_periods WHERE user_id = su.user_id) AS periods,
              su.billing_period_start <= now() AND su.billing_period_end > now() AS current,
              su.interpretation_count_month AS n
         FROM public.storage_usage su WHERE su.user_id = $1`,
      [userId],
    );
    expect(rows[0]!.current).toBe(true);
    expect(rows[0]!.n).toBe(0);
    // rolled once: the stored period keeps its count 3 once, a skipped period (if any within 40 days) has 0
    const { rows: sums } = await admin.query<{ total: number }>(
      'SELECT sum(interpretation_count)::int AS total FROM public.usage_periods WHERE user_id = $1',
      [userId],
    );
    expect(sums[0]!.total).toBe(3);
    expect(rows[0]!.periods).toBeGreaterThanOrEqual(1);
    expect(rows[0]!.periods).toBeLessThanOrEqual(2);
  });
});
