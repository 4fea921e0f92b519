// Drop-in upgrade of a live Neotoma v0.2.0 database (tests/fixtures/neotoma-v0.2.0): `migrate up` runs while
// writers keep inserting and deleting, and every counter is true when it returns. In Supabase mode the cluster
// is Supabase-shaped and everything runs as the non-superuser `postgres`.
import { randomUUID, createHash } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateUp } from '../../src/migrate.js';
import { client, throwawayCluster, type Throwaway } from './helpers/db.js';
import { loadV020, specialUser } from './helpers/v020-fixture.js';

const hash = (s: string): string => createHash('sha256').update(s).digest('hex');

/**
 * Users whose counters disagree with the documented truth: storage, and this period's interpretations = the runs
 * holding a unit of the period (no run is deleted here, so none is missing from the count).
 */
const WRONG_COUNTERS = `
  WITH truth AS (
    SELECT u.user_id,
           (SELECT coalesce(sum(s.file_size), 0) FROM public.sources s WHERE s.user_id = u.user_id) AS bytes,
           (SELECT count(*) FROM public.sources s WHERE s.user_id = u.user_id) AS n
      FROM (SELECT user_id FROM public.sources UNION SELECT user_id FROM public.interpretation_runs) u
  )
  SELECT t.user_id, su.total_bytes, t.bytes, su.total_sources, t.n, su.interpretation_count_month,
         (SELECT count(*) FROM public.interpretation_runs r
           WHERE r.user_id = t.user_id AND r.quota_released_at IS NULL
             AND coalesce(r.quota_charged_at, r.created_at) >= su.billing_period_start
             AND coalesce(r.quota_charged_at, r.created_at) < su.billing_period_end) AS runs
    FROM truth t LEFT JOIN public.storage_usage su ON su.user_id = t.user_id
   WHERE su.user_id IS NULL OR su.total_bytes <> t.bytes OR su.total_sources <> t.n
      OR su.interpretation_count_month <> (SELECT count(*) FROM public.interpretation_runs r
           WHERE r.user_id = t.user_id AND r.quota_released_at IS NULL
             AND coalesce(r.quota_charged_at, r.created_at) >= su.billing_period_start
             AND coalesce(r.quota_charged_at, r.created_at) < su.billing_period_end)`;

interface WriterStats {
  writes: number;
  maxWaitMs: number;
  errors: string[];
}

/**
 * One session that keeps writing as Neotoma's API server would: a source for an existing or a new user, a run
 * on it, and now and then the deletion of a source it made without runs. Each statement's duration is recorded.
 */
async function writer(url: string, users: string[], stop: () => boolean, stats: WriterStats): Promise<void> {
  const c = new pg.Client({ connectionString: url, application_name: 'upgrade-test writer' });
  await c.connect();
  const timed = async <T>(fn: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      stats.maxWaitMs = Math.max(stats.maxWaitMs, performance.now() - t0);
    }
  };
  try {
    for (let i = 0; !stop(); i++) {
      const user = users[i % users.length]!;
      try {
        const key = `${user}/${randomUUID()}`;
        const { rows } = await timed(() =>
          c.query<{ id: string }>(
            `INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
             VALUES ($1::uuid, $2::text, 'text/plain', $1::text || '/' || $2::text, $3) RETURNING id`,
            [user, hash(key), 1000 + (i % 50)],
          ),
        );
        const id = rows[0]!.id;
        if (i % 4 === 3) {
          await timed(() => c.query('DELETE FROM public.sources WHERE id = $1', [id]));
        } else {
          await timed(() =>
            c.query(
              `INSERT INTO public.interpretation_runs (user_id, source_id, interpretation_config, status)
               VALUES ($1, $2, '{}', 'completed')`,
              [user, id],
            ),
          );
        }
        stats.writes += 1;
        await new Promise((r) => setTimeout(r, 3)); // a steady stream, well inside every user's quota
      } catch (err) {
        stats.errors.push(`${(err as { code?: string }).code ?? '?'} ${(err as Error).message}`);
      }
    }
  } finally {
    await c.end();
  }
}

describe('drop-in upgrade of a populated Neotoma v0.2.0 database', () => {
  let db: Throwaway;
  let c: pg.Client;
  const stats: WriterStats = { writes: 0, maxWaitMs: 0, errors: [] };
  let log: string[] = [];

  beforeAll(async () => {
    db = await throwawayCluster();
    await loadV020(db.url, { users: 300, files: 8, runs: 8 });
    // generic fixture users (ids from data.sql) and users who only appear during the upgrade
    const fixtureUsers = Array.from({ length: 150 }, (_, k) => {
      const n = (k * 2 + 1).toString(16);
      return `b${n.padStart(7, '0')}-0000-4000-8000-${n.padStart(12, '0')}`;
    });
    const users = [...fixtureUsers, ...Array.from({ length: 50 }, () => randomUUID())];

    let stopped = false;
    const writers = Array.from({ length: 4 }, () => writer(db.url, users, () => stopped, stats));
    await new Promise((r) => setTimeout(r, 300)); // writing before the upgrade starts
    log = [];
    await migrateUp(db.url, { log: (l) => log.push(l) });
    await new Promise((r) => setTimeout(r, 300)); // and after it returns
    stopped = true;
    await Promise.all(writers);
    c = await client(db.url);
  }, 240_000);

  afterAll(async () => {
    await c?.end();
    await db?.destroy();
  });

  it('completes every deferred step while the writers write, none of whose writes fails or waits long', async () => {
    // every step the migrations recorded ran during this one `migrate up`, and is done
    const { rows: steps } = await c.query<{ description: string; done: boolean }>(
      'SELECT description, completed_at IS NOT NULL AS done FROM neotoma_ops.deferred_steps ORDER BY migration, position');
    expect(steps.length).toBeGreaterThan(0);
    expect(steps.every((s) => s.done)).toBe(true);
    expect(log.filter((l) => l.startsWith('running deferred step')).sort())
      .toEqual(steps.map((s) => `running deferred step: ${s.description}`).sort());
    console.info(`upgrade under writers: ${stats.writes} writes, longest statement ${stats.maxWaitMs.toFixed(0)} ms`);
    expect(stats.errors).toEqual([]);
    expect(stats.writes).toBeGreaterThan(20);
    // the migrations take table locks with lock_timeout = 500 ms; the 1 s target is measured in bench/upgrade
    expect(stats.maxWaitMs).toBeLessThan(2500);
  });

  it('leaves every user with counters equal to the truth: bytes, sources and this period\'s runs', async () => {
    const { rows } = await c.query(WRONG_COUNTERS);
    expect(rows).toEqual([]);
    const n = await c.query<{ users: string }>(`SELECT count(*) AS users FROM public.storage_usage`);
    expect(Number(n.rows[0]!.users)).toBeGreaterThanOrEqual(300 + 7);
    expect((await c.query(`SELECT public.reconcile_storage_usage() AS fixed`)).rows[0]).toEqual({ fixed: 0 });
  });

  it('refuses new bytes of a user already at or over the limit, and lets them delete', async () => {
    const report = await c.query<{ user_id: string; state: string }>(
      `SELECT user_id, state FROM public.storage_usage_report WHERE user_id = ANY ($1) ORDER BY user_id`,
      [[specialUser(1), specialUser(2), specialUser(3)]],
    );
    expect(report.rows.map((r) => r.state)).toEqual(['full', 'over', 'ok']);
    for (const u of [specialUser(1), specialUser(2)]) {
      const err = await c
        .query(`INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size) VALUES ($1, $2, 'text/plain', 'k', 1)`, [u, hash(`${u}-more`)])
        .catch((e: unknown) => e as { code?: string; detail?: string });
      expect((err as { code?: string }).code).toBe('PT402');
      expect(JSON.parse((err as { detail: string }).detail).code).toBe('STORAGE_QUOTA_EXCEEDED');
    }
    await c.query('BEGIN');
    try {
      const del = await c.query(`DELETE FROM public.sources WHERE user_id = $1 AND id = (SELECT min(id::text)::uuid FROM public.sources WHERE user_id = $1)`, [specialUser(2)]);
      expect(del.rowCount).toBe(1);
      const after = await c.query<{ total_bytes: string }>(`SELECT total_bytes FROM public.storage_usage WHERE user_id = $1`, [specialUser(2)]);
      expect(after.rows[0]!.total_bytes).toBe(String(10 * 107374182));
    } finally {
      await c.query('ROLLBACK');
    }
    await c.query(`INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size) VALUES ($1, $2, 'text/plain', 'k', 1048576)`, [specialUser(3), hash('s3-more')]);
  });

  it('counts this period\'s existing runs, so a user past the monthly limit is refused at once', async () => {
    const u = await c.query<{ interpretation_count_month: number }>(`SELECT interpretation_count_month FROM public.storage_usage WHERE user_id = $1`, [specialUser(4)]);
    expect(u.rows[0]!.interpretation_count_month).toBe(150);
    const err = await c
      .query(`INSERT INTO public.interpretation_runs (user_id, source_id, interpretation_config, status)
              SELECT user_id, id, '{}', 'pending' FROM public.sources WHERE user_id = $1`, [specialUser(4)])
      .catch((e: unknown) => e as { code?: string; detail?: string });
    expect((err as { code?: string }).code).toBe('PT402');
    expect(JSON.parse((err as { detail: string }).detail)).toMatchObject({ code: 'INTERPRETATION_QUOTA_EXCEEDED', used: 150, limit: 100 });
  });

  it('charged the runs in flight, so their timeout refunds exactly what was charged', async () => {
    const before = await c.query<{ count: number; charged_in_flight: string }>(
      `SELECT su.interpretation_count_month AS count,
              (SELECT count(*) FROM public.interpretation_runs r
                WHERE r.user_id = su.user_id AND r.status IN ('pending', 'running')
                  AND r.created_at >= su.billing_period_start AND r.created_at < su.billing_period_end) AS charged_in_flight
         FROM public.storage_usage su WHERE su.user_id = $1`,
      [specialUser(5)],
    );
    const { count, charged_in_flight } = before.rows[0]!;
    expect(Number(charged_in_flight)).toBeGreaterThan(0);
    await c.query('BEGIN');
    try {
      // every in-flight run of users 5 and 6 misses its deadline (one of 5's was created in an earlier period,
      // one of 6's has no created_at: neither was charged in this period)
      await c.query(`UPDATE public.interpretation_runs SET timeout_at = now() - interval '1 minute'
                      WHERE user_id = ANY ($1) AND status IN ('pending', 'running')`, [[specialUser(5), specialUser(6)]]);
      const swept = await c.query<{ n: number }>(`SELECT public.cleanup_stale_interpretations() AS n`);
      expect(swept.rows[0]!.n).toBeGreaterThanOrEqual(7);
      const after = await c.query<{ interpretation_count_month: number }>(`SELECT interpretation_count_month FROM public.storage_usage WHERE user_id = $1`, [specialUser(5)]);
      expect(after.rows[0]!.interpretation_count_month).toBe(count - Number(charged_in_flight));
      expect((await c.query(WRONG_COUNTERS)).rows).toEqual([]);
    } finally {
      await c.query('ROLLBACK');
    }
  });
});

describe('migrate down on an upgraded v0.2.0 database', () => {
  let db: Throwaway;
  let c: pg.Client;
  const SHAPE = `
    SELECT c.relname, jsonb_build_object(
      'columns', (SELECT jsonb_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END ORDER BY a.attnum)
                    FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
      'constraints', (SELECT jsonb_agg(k.conname || ' ' || pg_get_constraintdef(k.oid) ORDER BY k.conname) FROM pg_constraint k WHERE k.conrelid = c.oid),
      'indexes', (SELECT jsonb_agg(pg_get_indexdef(i.indexrelid) ORDER BY 1) FROM pg_index i WHERE i.indrelid = c.oid),
      'policies', (SELECT jsonb_agg(p.polname || ' ' || coalesce(pg_get_expr(p.polqual, p.polrelid), '') ORDER BY p.polname) FROM pg_policy p WHERE p.polrelid = c.oid),
      'triggers', (SELECT jsonb_agg(t.tgname ORDER BY t.tgname) FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal),
      'grants', (SELECT jsonb_agg(x.g ORDER BY x.g) FROM (SELECT a.grantee::regrole::text || ' ' || a.privilege_type AS g
                                                           FROM aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a) x),
      'rls', c.relrowsecurity,
      'rows', (SELECT count(*) FROM public.sources) + (SELECT count(*) FROM public.interpretation_runs)) AS shape
      FROM pg_class c WHERE c.oid IN ('public.sources'::regclass, 'public.interpretation_runs'::regclass) ORDER BY 1`;

  beforeAll(async () => {
    db = await throwawayCluster();
    await loadV020(db.url, { users: 20 });
    c = await client(db.url);
  }, 120_000);

  afterAll(async () => {
    await c?.end();
    await db?.destroy();
  });

  it('puts Neotoma\'s tables back exactly as they were (columns, checks, indexes, policies, triggers, grants, rows), and up works again', async () => {
    const before = (await c.query(SHAPE)).rows;
    await migrateUp(db.url);
    const upgraded = (await c.query(SHAPE)).rows;
    expect(upgraded).not.toEqual(before);
    const down = await runCliDown(db.url);
    expect(down).toMatch(/Reverted /);
    expect((await c.query(SHAPE)).rows).toEqual(before);
    expect((await c.query(`SELECT to_regclass('public.storage_usage') AS t`)).rows[0]).toEqual({ t: null });
    await migrateUp(db.url);
    expect((await c.query(SHAPE)).rows).toEqual(upgraded);
    expect((await c.query(WRONG_COUNTERS)).rows).toEqual([]);
  });
});

async function runCliDown(url: string): Promise<string> {
  const { runCli } = await import('./helpers/db.js');
  const r = await runCli(['migrate', 'down', '--count', '100'], { DATABASE_URL: url });
  if (r.code !== 0) throw new Error(r.stderr);
  return r.stdout;
}
