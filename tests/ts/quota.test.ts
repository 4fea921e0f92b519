import { randomUUID, createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { client, testDatabaseUrl } from './helpers/db.js';

const MiB = 1024 * 1024;

function hash(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

interface UsageRow {
  total_bytes: string;
  total_sources: string;
  sum_bytes: string;
  n: string;
}

async function usage(c: pg.Client, userId: string): Promise<UsageRow> {
  const { rows } = await c.query<UsageRow>(
    `SELECT su.total_bytes, su.total_sources,
            (SELECT coalesce(sum(file_size), 0) FROM public.sources WHERE user_id = $1) AS sum_bytes,
            (SELECT count(*) FROM public.sources WHERE user_id = $1) AS n
       FROM public.storage_usage su WHERE su.user_id = $1`,
    [userId],
  );
  if (!rows[0]) throw new Error(`no storage_usage row for ${userId}`);
  return rows[0];
}

const INSERT_SOURCE = `INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
                       VALUES ($1::uuid, $2::text, 'application/pdf', $1::text || '/' || $2::text, $3::bigint)`;

/** Runs one insert per connection, all at once (each on its own connection). */
async function parallelInserts(userId: string, sizes: number[]): Promise<{ ok: number; codes: string[] }> {
  const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: sizes.length });
  try {
    // open every connection first so the inserts really race
    const conns = await Promise.all(sizes.map(() => pool.connect()));
    const results = await Promise.allSettled(
      conns.map((c, i) => c.query(INSERT_SOURCE, [userId, hash(`${userId}-${i}`), sizes[i]])),
    );
    conns.forEach((c) => c.release());
    const codes = results
      .filter((r): r is PromiseRejectedResult => r.status === 'rejected')
      .map((r) => (r.reason as { code?: string }).code ?? 'none');
    return { ok: results.filter((r) => r.status === 'fulfilled').length, codes };
  } finally {
    await pool.end();
  }
}

async function captureError(c: pg.Client, sql: string, params: unknown[]): Promise<pg.DatabaseError> {
  try {
    await c.query(sql, params);
  } catch (err) {
    return err as pg.DatabaseError;
  }
  throw new Error('statement was expected to fail');
}

describe('quota enforcement under concurrency', () => {
  let c: pg.Client;
  beforeAll(async () => {
    c = await client();
  });
  afterAll(async () => {
    await c.end();
  });

  it('50 parallel inserts for a user whose remaining quota fits exactly 17: 17 succeed, 33 get PT402', async () => {
    const user = randomUUID();
    await c.query(`SELECT public.set_user_plan($1, 'free')`, [user]);
    await c.query(`UPDATE public.storage_usage SET storage_limit_bytes_override = 17000 WHERE user_id = $1`, [user]);
    const { ok, codes } = await parallelInserts(user, Array.from({ length: 50 }, () => 1000));
    expect(ok).toBe(17);
    expect(codes).toEqual(Array.from({ length: 33 }, () => 'PT402'));
    const u = await usage(c, user);
    expect(u.total_bytes).toBe('17000');
    expect(u.total_bytes).toBe(u.sum_bytes);
    expect(u.total_sources).toBe(u.n);
  });

  it('50 parallel first writes of a user with no usage row: counter row created once, no 23505, exact', async () => {
    const user = randomUUID();
    // free plan: 1 GiB; ten 100 MiB files fit (1000 MiB), the eleventh does not
    const { ok, codes } = await parallelInserts(user, Array.from({ length: 50 }, () => 100 * MiB));
    expect(ok).toBe(10);
    expect(codes.filter((code) => code === '23505')).toEqual([]);
    expect(codes).toEqual(Array.from({ length: 40 }, () => 'PT402'));
    const u = await usage(c, user);
    expect(u.total_bytes).toBe(String(1000 * MiB));
    expect(u.total_bytes).toBe(u.sum_bytes);
    expect(u.total_sources).toBe('10');
  });

  it('reconcile while inserts are in flight ends exact and logs the drift it repaired', async () => {
    const user = randomUUID();
    await c.query(`SELECT public.set_user_plan($1, 'pro')`, [user]);
    // drift: a row written with the accounting trigger disabled (by the table owner, for this transaction only)
    await c.query('BEGIN');
    await c.query(`ALTER TABLE public.sources DISABLE TRIGGER quota_sources_insert`);
    await c.query(INSERT_SOURCE, [user, hash(`${user}-drift`), 5000]);
    await c.query(`ALTER TABLE public.sources ENABLE TRIGGER quota_sources_insert`);
    await c.query('COMMIT');

    const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 9 });
    try {
      const writers = Array.from({ length: 8 }, (_, w) =>
        (async () => {
          for (let i = 0; i < 25; i++) {
            const conn = await pool.connect();
            try {
              await conn.query('BEGIN');
              await conn.query(INSERT_SOURCE, [user, hash(`${user}-${w}-${i}`), 100 + i]);
              if (i % 5 === 0) await conn.query(`DELETE FROM public.sources WHERE user_id = $1 AND content_hash = $2`, [user, hash(`${user}-${w}-${i}`)]);
              await conn.query('COMMIT');
            } finally {
              conn.release();
            }
          }
        })(),
      );
      const reconciler = (async () => {
        let fixed = 0;
        for (let i = 0; i < 10; i++) {
          const { rows } = await pool.query<{ n: number }>(`SELECT public.reconcile_storage_usage($1) AS n`, [user]);
          fixed += rows[0]?.n ?? 0;
        }
        return fixed;
      })();
      await Promise.all(writers);
      const fixed = await reconciler;
      expect(fixed).toBe(1);
    } finally {
      await pool.end();
    }
    const u = await usage(c, user);
    expect(u.total_bytes).toBe(u.sum_bytes);
    expect(u.total_sources).toBe(u.n);
    const { rows } = await c.query<{ bytes_delta: string }>(
      `SELECT bytes_delta FROM public.usage_drift_log WHERE user_id = $1`,
      [user],
    );
    expect(rows.map((r) => r.bytes_delta)).toEqual(['5000']);
  });
});

describe('quota errors as a pg client sees them', () => {
  let c: pg.Client;
  beforeAll(async () => {
    c = await client();
  });
  afterAll(async () => {
    await c.end();
  });

  it('storage: PT402, binary-unit message, JSON detail, actionable hint; counted although rolled back', async () => {
    const user = randomUUID();
    // 10 x 100 MiB + 24 MiB = exactly 1 GiB on plan free
    for (let i = 0; i < 10; i++) await c.query(INSERT_SOURCE, [user, hash(`${user}-${i}`), 100 * MiB]);
    await c.query(INSERT_SOURCE, [user, hash(`${user}-last`), 24 * MiB]);
    const before = await rejections(c, 'storage');
    const err = await captureError(c, INSERT_SOURCE, [user, hash(`${user}-over`), 12 * MiB]);
    expect(err.code).toBe('PT402');
    expect(err.message).toBe('Storage quota exceeded: 1.00 GiB of 1.00 GiB used on plan free; this upload needs 12.0 MiB');
    expect(JSON.parse(err.detail ?? '')).toEqual({
      code: 'STORAGE_QUOTA_EXCEEDED',
      plan: 'free',
      user_id: user,
      used_bytes: 1073741824,
      limit_bytes: 1073741824,
      requested_bytes: 12 * MiB,
    });
    expect(err.hint).toMatch(/^Delete sources you no longer need \(free at least 12\.0 MiB\) or upgrade/);
    const { rows } = await c.query<{ n: string }>(`SELECT count(*) AS n FROM public.sources WHERE user_id = $1`, [user]);
    expect(rows[0]?.n).toBe('11');
    // other suites may refuse statements at the same time: at least ours is counted
    expect((await rejections(c, 'storage')) - before).toBeGreaterThanOrEqual(1);
  });

  it('file too large: PT413 FILE_TOO_LARGE', async () => {
    const user = randomUUID();
    const err = await captureError(c, INSERT_SOURCE, [user, hash(user), 150 * MiB]);
    expect(err.code).toBe('PT413');
    expect(err.message).toBe('File too large: 150 MiB exceeds the per-file limit of 100 MiB on plan free');
    expect(JSON.parse(err.detail ?? '')).toMatchObject({ code: 'FILE_TOO_LARGE', file_bytes: 150 * MiB, max_file_bytes: 100 * MiB });
    expect(err.hint).toContain('100 MiB');
  });

  it('interpretations: PT402 INTERPRETATION_QUOTA_EXCEEDED with resets_at', async () => {
    const user = randomUUID();
    const sourceId = randomUUID();
    await c.query(`SELECT public.set_user_plan($1, 'free')`, [user]);
    await c.query(`UPDATE public.storage_usage SET interpretation_limit_month_override = 1 WHERE user_id = $1`, [user]);
    await c.query(
      `INSERT INTO public.sources (id, user_id, content_hash, mime_type, storage_url, file_size) VALUES ($2, $1, $3, 'text/plain', 'k', 1)`,
      [user, sourceId, hash(sourceId)],
    );
    const run = `INSERT INTO public.interpretation_runs (user_id, source_id, interpretation_config, status) VALUES ($1, $2, '{}', 'pending')`;
    await c.query(run, [user, sourceId]);
    const err = await captureError(c, run, [user, sourceId]);
    expect(err.code).toBe('PT402');
    const detail = JSON.parse(err.detail ?? '') as Record<string, unknown>;
    const { rows } = await c.query<{ end: string }>(
      `SELECT to_char(billing_period_end AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS end FROM public.storage_usage WHERE user_id = $1`,
      [user],
    );
    expect(detail).toMatchObject({ code: 'INTERPRETATION_QUOTA_EXCEEDED', plan: 'free', used: 1, limit: 1, resets_at: rows[0]?.end });
    expect(err.hint).toMatch(/resets on \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC/);
  });
});

async function rejections(c: pg.Client, resource: string): Promise<number> {
  const { rows } = await c.query<{ rejections: string }>(
    `SELECT rejections FROM neotoma_ops.quota_rejection_counts() WHERE resource = $1`,
    [resource],
  );
  return Number(rows[0]?.rejections ?? 0);
}
