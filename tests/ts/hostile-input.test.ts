// Hostile input: every function of the schemas public and neotoma_ops (enumerated from the catalog, so a new
// function is covered without editing this file) is called as service_role with NULLs, negative and huge
// numbers, empty and 1 MB strings, malformed UUIDs and hashes, extreme intervals and instants, and SQL-looking
// text. Each call must either succeed or fail cleanly with a standard SQLSTATE; SQL-looking text must be
// stored verbatim and never executed. Runs on a cluster of its own (the calls take advisory locks and sweep
// whole tables), inside one transaction that is rolled back; each call runs in a savepoint.
import { createHash, randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateUp } from '../../src/migrate.js';
import { client, throwawayCluster, type Throwaway } from './helpers/db.js';

const INJECTION = "'); DROP TABLE public.sources; --";
const INJECTION_2 = "x' OR '1'='1'; DELETE FROM public.plans; SELECT pg_sleep(30); --";
const MB = 'x'.repeat(1 << 20);
const MB_BYTES = Buffer.alloc(1 << 20, 7);
const USER = '5e5e5e5e-0000-4000-8000-000000000001';

/** SQLSTATEs a bad argument may end in: data exceptions, integrity violations, wrong state, not found, quota. */
const ALLOWED_SQLSTATE = /^(22[0-9A-Z]{3}|23[0-9A-Z]{3}|55000|P0002|PT402|PT413)$/;

type Value = string | number | boolean | Buffer | null;
interface Hostile {
  label: string;
  value: Value;
}

const INJECTIONS: Hostile[] = [
  { label: 'sql-looking text', value: INJECTION },
  { label: 'sql-looking text 2', value: INJECTION_2 },
];

/** Hostile values per argument type (format_type spelling). A type missing here fails the test: add it. */
const HOSTILE: Record<string, Hostile[]> = {
  uuid: [
    { label: 'NULL', value: null },
    { label: 'nil uuid', value: '00000000-0000-0000-0000-000000000000' },
    { label: 'unknown uuid', value: randomUUID() },
    { label: 'malformed uuid', value: 'not-a-uuid' },
    { label: 'empty', value: '' },
    { label: 'sql-looking uuid', value: INJECTION },
  ],
  integer: [
    { label: 'NULL', value: null },
    { label: '-1', value: -1 },
    { label: '0', value: 0 },
    { label: 'int max', value: 2147483647 },
    { label: 'int min', value: -2147483648 },
    { label: 'int overflow', value: '2147483648' },
  ],
  bigint: [
    { label: 'NULL', value: null },
    { label: '-1', value: -1 },
    { label: '0', value: 0 },
    { label: 'bigint max', value: '9223372036854775807' },
    { label: 'bigint min', value: '-9223372036854775808' },
  ],
  text: [
    { label: 'NULL', value: null },
    { label: 'empty', value: '' },
    { label: 'blank', value: '   ' },
    { label: '1 MB', value: MB },
    { label: 'uppercase hash', value: 'A'.repeat(64) },
    { label: 'malformed hash', value: 'g'.repeat(63) },
    { label: 'unicode', value: 'ünïcødé ✓ 🚀 \u202e' },
    { label: 'NUL byte', value: 'a\u0000b' },
    ...INJECTIONS,
  ],
  interval: [
    { label: 'NULL', value: null },
    { label: '-1 day', value: '-1 day' },
    { label: '0', value: '0' },
    { label: '1 microsecond', value: '1 microsecond' },
    { label: '1000 years', value: '1000 years' },
    { label: 'interval overflow', value: '999999999 years' },
  ],
  'timestamp with time zone': [
    { label: 'NULL', value: null },
    { label: 'infinity', value: 'infinity' },
    { label: '-infinity', value: '-infinity' },
    { label: '1970', value: '1970-01-01T00:00:00Z' },
    { label: '2100 leap-less Feb', value: '2100-02-28T23:59:59.999999Z' },
    { label: 'year 200000', value: '200000-01-01T00:00:00Z' },
    { label: '4713 BC', value: '4713-11-24 00:00:00+00 BC' },
  ],
  boolean: [
    { label: 'NULL', value: null },
    { label: 'true', value: true },
    { label: 'false', value: false },
  ],
  bytea: [
    { label: 'NULL', value: null },
    { label: 'empty', value: Buffer.alloc(0) },
    { label: '1 MB', value: MB_BYTES },
  ],
  'uuid[]': [
    { label: 'NULL', value: null },
    { label: 'empty array', value: '{}' },
    { label: 'array of NULL', value: '{NULL}' },
    { label: 'malformed element', value: '{not-a-uuid}' },
  ],
  'timestamp with time zone[]': [
    { label: 'NULL', value: null },
    { label: 'empty array', value: '{}' },
    { label: 'array of NULL', value: '{NULL}' },
    { label: 'infinity', value: '{infinity,-infinity}' },
    { label: 'malformed element', value: '{yesterday-ish}' },
    { label: 'year 200000', value: '{"200000-01-01 00:00:00+00"}' },
  ],
  'text[]': [
    { label: 'NULL', value: null },
    { label: 'empty array', value: '{}' },
    { label: 'array of NULL', value: '{NULL}' },
    { label: 'sql-looking element', value: `{"${INJECTION.replace(/["\\]/g, '\\$&')}"}` },
  ],
};

interface Fn {
  schema: string;
  name: string;
  argnames: string[];
  argtypes: string[];
  signature: string;
}

interface Fixture {
  sourceId: string;
  jobId: string;
  leaseToken: string;
  runId: string;
}

interface Outcome {
  call: string;
  ok: boolean;
  code?: string;
  message?: string;
}

let tc: Throwaway;
let db: pg.Client;
let fns: Fn[];
let fx: Fixture;

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** A sane value for an argument, by name then type, so that the other arguments of a call get past their checks. */
function base(fn: Fn, i: number): Value {
  const name = fn.argnames[i] ?? '';
  const type = fn.argtypes[i]!;
  if (type === 'uuid') {
    if (name === 'p_user_id') return USER;
    if (name === 'p_source_id') return fx.sourceId;
    if (name === 'p_job_id') return fx.jobId;
    if (name === 'p_lease_token') return fx.leaseToken;
    if (name === 'p_run_id') return fx.runId;
    return randomUUID();
  }
  switch (type) {
    case 'integer':
    case 'bigint':
    case 'anyelement':
      return 1;
    case 'text':
      return name === 'p_plan_id' ? 'free' : 'hostile-input-test';
    case 'interval':
      return '5 minutes';
    case 'timestamp with time zone':
      return new Date().toISOString();
    case 'boolean':
      return true;
    case 'bytea':
      return Buffer.from('hostile');
    case 'uuid[]':
      return `{${USER}}`;
    case 'timestamp with time zone[]':
      return `{"${new Date().toISOString()}"}`;
    case 'text[]':
      return '{hostile-input-test}';
    default:
      return null;
  }
}

/** Runs one call in a savepoint (always rolled back) as service_role; also reports whether public.sources survived. */
/** A polymorphic argument (neotoma_ops.effective_limit) is called with bigint values, as the quota checks call it. */
const concrete = (type: string): string => (type === 'anyelement' ? 'bigint' : type);

async function attempt(fn: Fn, args: Value[]): Promise<Outcome & { sourcesIntact: boolean }> {
  const placeholders = args.map((_, i) => `$${i + 1}::${concrete(fn.argtypes[i]!)}`).join(', ');
  const sql = `SELECT * FROM ${fn.schema}.${fn.name}(${placeholders})`;
  const call = `${fn.signature} with ${args
    .map((a) => (a === null ? 'NULL' : Buffer.isBuffer(a) ? `<${a.length} bytes>` : String(a).slice(0, 40)))
    .join(', ')}`;
  await db.query('SAVEPOINT hostile');
  let outcome: Outcome;
  try {
    await db.query(sql, args);
    outcome = { call, ok: true };
  } catch (err) {
    const e = err as { code?: string; message?: string };
    outcome = { call, ok: false, code: e.code, message: e.message };
    await db.query('ROLLBACK TO SAVEPOINT hostile');
  }
  const check = await db.query<{ intact: boolean }>(
    `SELECT to_regclass('public.sources') IS NOT NULL AND to_regclass('public.plans') IS NOT NULL AS intact`,
  );
  await db.query('ROLLBACK TO SAVEPOINT hostile');
  await db.query('RELEASE SAVEPOINT hostile');
  return { ...outcome, sourcesIntact: check.rows[0]!.intact };
}

async function counts(): Promise<Record<string, number>> {
  const r = await db.query<{ sources: number; plans: number; runs: number; usage: number }>(
    `SELECT (SELECT count(*)::int FROM public.sources) AS sources, (SELECT count(*)::int FROM public.plans) AS plans,
            (SELECT count(*)::int FROM public.interpretation_runs) AS runs,
            (SELECT count(*)::int FROM public.storage_usage) AS usage`,
  );
  return r.rows[0]!;
}

/** Inserts a pending source with its bytes enqueued; returns source and job ids. */
async function pendingSource(content: Buffer, errorMessage: string | null = null): Promise<{ sourceId: string; jobId: string }> {
  const hash = sha256(content);
  const s = await db.query<{ id: string }>(
    `INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size, storage_status)
     VALUES ($1::uuid, $2::text, 'text/plain', $1::text || '/' || $2::text, $3, 'pending') RETURNING id`,
    [USER, hash, content.length],
  );
  const sourceId = s.rows[0]!.id;
  const j = await db.query<{ id: string }>('SELECT public.enqueue_upload($1, $2, $3) AS id', [sourceId, content, errorMessage]);
  return { sourceId, jobId: j.rows[0]!.id };
}

beforeAll(async () => {
  tc = await throwawayCluster();
  await migrateUp(tc.url);
  db = await client(tc.url);
  await db.query(`SET statement_timeout = '10s'`);
  const r = await db.query<{ schema: string; name: string; argnames: string[] | null; argtypes: string[]; signature: string }>(
    `SELECT n.nspname AS schema, p.proname AS name, p.proargnames AS argnames,
            ARRAY(SELECT pg_catalog.format_type(t, NULL) FROM unnest(p.proargtypes::oid[]) WITH ORDINALITY u(t, i) ORDER BY i) AS argtypes,
            format('%s.%s(%s)', n.nspname, p.proname, pg_catalog.oidvectortypes(p.proargtypes)) AS signature
       FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
      WHERE n.nspname IN ('public', 'neotoma_ops')
        AND p.prorettype <> 'pg_catalog.trigger'::regtype
        AND pg_catalog.has_function_privilege('service_role', p.oid, 'EXECUTE')  -- the role the calls are made as
        AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                         WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
      ORDER BY 1, 2, 5`,
  );
  fns = r.rows.map((row) => ({ ...row, argnames: row.argnames ?? [] }));

  // fixture: one user with a claimed upload job and a running interpretation, all inside a rolled-back transaction
  await db.query('BEGIN');
  await db.query('SET LOCAL ROLE service_role');
  const { sourceId, jobId } = await pendingSource(Buffer.from(`fixture ${randomUUID()}`));
  await db.query(`UPDATE public.upload_queue SET next_retry_at = now() - interval '1 second' WHERE id = $1`, [jobId]);
  const claimed = await db.query<{ lease_token: string }>(`SELECT lease_token FROM public.claim_upload_jobs('fixture', 10)`);
  const run = await db.query<{ id: string }>(
    `INSERT INTO public.interpretation_runs (user_id, source_id, interpretation_config, status)
     VALUES ($1, $2, '{}', 'running') RETURNING id`,
    [USER, sourceId],
  );
  fx = { sourceId, jobId, leaseToken: claimed.rows[0]!.lease_token, runId: run.rows[0]!.id };
}, 120_000);

afterAll(async () => {
  await db?.query('ROLLBACK').catch(() => undefined);
  await db?.end();
  await tc?.destroy();
});

describe('hostile input to every SQL function', () => {
  it('covers the functions of the contract (the catalog enumeration is not empty or partial)', () => {
    const names = fns.map((f) => f.name);
    for (const expected of ['claim_upload_jobs', 'fail_upload_job', 'enqueue_upload', 'billing_period_bounds',
      'upload_retry_delay', 'set_user_plan', 'reconcile_storage_usage', 'heartbeat_interpretation', 'ops_metrics']) {
      expect(names).toContain(expected);
    }
    const missing = [...new Set(fns.flatMap((f) => f.argtypes.map(concrete)))].filter((t) => !(t in HOSTILE));
    expect(missing, 'argument types without hostile values: add them to HOSTILE').toEqual([]);
  });

  it('ends every call in success or a clean standard error, and never executes SQL-looking text', async () => {
    const before = await counts();
    const bad: Outcome[] = [];
    let calls = 0;
    let clean = 0;
    for (const fn of fns) {
      const variants: Value[][] = [fn.argtypes.map(() => null)];
      fn.argtypes.forEach((type, i) => {
        for (const h of HOSTILE[concrete(type)] ?? []) {
          const args = fn.argtypes.map((_, j) => base(fn, j));
          args[i] = h.value;
          variants.push(args);
        }
      });
      for (const args of variants) {
        const o = await attempt(fn, args);
        calls += 1;
        if (!o.sourcesIntact) bad.push({ ...o, message: `public.sources or public.plans vanished: ${o.message ?? ''}` });
        if (o.ok) continue;
        clean += 1;
        const acceptable =
          o.code !== undefined && ALLOWED_SQLSTATE.test(o.code) && !/syntax error/i.test(o.message ?? '');
        if (!acceptable) bad.push(o);
      }
    }
    expect(bad).toEqual([]);
    expect(calls).toBeGreaterThan(fns.length * 3);
    expect(clean).toBeGreaterThan(0);
    expect(await counts()).toEqual(before);
  });
});

describe('SQL-looking text is data', () => {
  it('stores p_worker_id and p_error_message of the upload queue verbatim', async () => {
    const before = await counts();
    await db.query('SAVEPOINT verbatim');
    try {
      const { jobId } = await pendingSource(Buffer.from(`verbatim ${randomUUID()}`), INJECTION_2);
      expect((await db.query('SELECT error_message FROM public.upload_queue WHERE id = $1', [jobId])).rows[0]).toEqual({
        error_message: INJECTION_2,
      });
      await db.query(`UPDATE public.upload_queue SET next_retry_at = now() - interval '1 hour' WHERE id = $1`, [jobId]);
      const claimed = await db.query<{ job_id: string; lease_token: string }>(
        'SELECT job_id, lease_token FROM public.claim_upload_jobs($1, 1000)',
        [INJECTION],
      );
      const mine = claimed.rows.find((r) => r.job_id === jobId);
      expect(mine).toBeDefined();
      expect((await db.query('SELECT locked_by FROM public.upload_queue WHERE id = $1', [jobId])).rows[0]).toEqual({
        locked_by: INJECTION,
      });
      const failed = await db.query<{ ok: boolean }>('SELECT public.fail_upload_job($1, $2, $3, true) AS ok', [
        jobId,
        mine!.lease_token,
        INJECTION,
      ]);
      expect(failed.rows[0]!.ok).toBe(true);
      expect((await db.query('SELECT error_message FROM public.upload_queue WHERE id = $1', [jobId])).rows[0]).toEqual({
        error_message: INJECTION,
      });
      // a 1 MB worker id is stored whole too (or refused cleanly)
      await db.query(`UPDATE public.upload_queue SET next_retry_at = now() - interval '1 hour' WHERE id = $1`, [jobId]);
      await db.query('SAVEPOINT big');
      try {
        await db.query('SELECT * FROM public.claim_upload_jobs($1, 1000)', [MB]);
        const r = await db.query<{ n: number }>('SELECT length(locked_by) AS n FROM public.upload_queue WHERE id = $1', [jobId]);
        expect(r.rows[0]!.n).toBe(MB.length);
        await db.query('RELEASE SAVEPOINT big');
      } catch (err) {
        await db.query('ROLLBACK TO SAVEPOINT big');
        expect((err as { code?: string }).code).toMatch(ALLOWED_SQLSTATE);
      }
      expect(await db.query(`SELECT to_regclass('public.sources') IS NOT NULL AS ok`).then((r) => r.rows[0])).toEqual({ ok: true });
    } finally {
      await db.query('ROLLBACK TO SAVEPOINT verbatim');
    }
    expect(await counts()).toEqual(before);
  });

  it('stores an interpretation error message verbatim', async () => {
    await db.query('SAVEPOINT verbatim');
    try {
      const r = await db.query<{ ok: boolean }>('SELECT public.fail_interpretation_run($1, $2) AS ok', [fx.runId, INJECTION]);
      expect(r.rows[0]!.ok).toBe(true);
      const row = await db.query('SELECT status, error_message FROM public.interpretation_runs WHERE id = $1', [fx.runId]);
      expect(row.rows[0]).toEqual({ status: 'failed', error_message: INJECTION });
    } finally {
      await db.query('ROLLBACK TO SAVEPOINT verbatim');
    }
  });

  it('treats a SQL-looking plan id as an unknown plan and changes nothing', async () => {
    await db.query('SAVEPOINT verbatim');
    try {
      const plansBefore = await db.query('SELECT id FROM public.plans ORDER BY id');
      const err = await db.query('SELECT public.set_user_plan($1, $2)', [USER, INJECTION]).then(
        () => null,
        (e: { code?: string }) => e,
      );
      expect(err?.code).toMatch(/^(22023|23503)$/);
      await db.query('ROLLBACK TO SAVEPOINT verbatim');
      expect((await db.query('SELECT id FROM public.plans ORDER BY id')).rows).toEqual(plansBefore.rows);
    } finally {
      await db.query('ROLLBACK TO SAVEPOINT verbatim');
    }
  });
});
