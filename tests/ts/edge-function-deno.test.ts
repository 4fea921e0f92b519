// The Edge Function as deployed: the unmodified supabase/functions/upload-queue-processor/index.ts under Deno (the
// `deno` devDependency, with deno.json and deno.lock), through pgbouncer in transaction mode (Supabase's pooler on
// port 6543), storing into the real Supabase Storage API server; with either kind of Supabase key.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildEdgeFunction } from '../../scripts/build-edge.mjs';
import { denoBinary, EDGE_FUNCTION_DIR, startEdgeFunction, type EdgeFunction } from '../../scripts/supabase-stack.mjs';
import { client, type Throwaway } from './helpers/db.js';
import { startPgbouncer, type Pgbouncer } from './helpers/pgbouncer.js';
import { realPartsTitle, startRealStorage, storageMissing, type RealStorage } from './helpers/real-storage.js';
import { enqueueJobs, jobStatus, migratedCluster } from './helpers/upload.js';

const execFileP = promisify(execFile);

interface Summary {
  ended: string;
  claimed: number;
  completed: number;
  retried: number;
  failed: number;
  storage_error: string | null;
  error?: string;
  message?: string;
}

let db: Throwaway;
let pooler: Pgbouncer;
let c: pg.Client;
let real: RealStorage;
const running: EdgeFunction[] = [];

async function serve(env: Record<string, string>): Promise<EdgeFunction> {
  const fn = await startEdgeFunction({ SUPABASE_URL: real.url, UPLOAD_PROCESSOR_BUDGET_SECONDS: '20', ...env });
  running.push(fn);
  return fn;
}

async function call(fn: EdgeFunction, headers: Record<string, string>, method = 'POST'): Promise<{ status: number; body: Summary }> {
  const res = await fetch(`${fn.url}/functions/v1/upload-queue-processor`, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    ...(method === 'POST' ? { body: '{"caller":"test"}' } : {}),
  });
  return { status: res.status, body: (await res.json()) as Summary };
}

const bearer = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` });

describe('the function source as Supabase deploys it', () => {
  it('deno check and deno lint pass on the function, with its lock file frozen', async () => {
    await buildEdgeFunction();
    const opts = { cwd: EDGE_FUNCTION_DIR, env: { ...process.env, NO_COLOR: '1', DENO_NO_UPDATE_CHECK: '1' } };
    await expect(execFileP(denoBinary(), ['check', '--frozen', 'index.ts'], opts)).resolves.toBeDefined();
    const lint = await execFileP(denoBinary(), ['lint'], opts);
    expect(lint.stderr + lint.stdout).toMatch(/Checked \d+ files?/);
  }, 120_000);
});

describe.skipIf(storageMissing)(realPartsTitle('the Edge Function under Deno, through pgbouncer, into the real Storage server'), () => {
  beforeAll(async () => {
    await buildEdgeFunction();
    [db, real] = await Promise.all([migratedCluster(), startRealStorage()]);
    pooler = await startPgbouncer(db.url, 'transaction', 4);
    c = await client(db.url);
  }, 300_000);
  afterAll(async () => {
    await Promise.all(running.map((f) => f.stop()));
    await c?.end();
    await pooler?.stop();
    await Promise.all([db?.destroy(), real?.stop()]);
  });
  beforeEach(async () => {
    await c.query('DELETE FROM public.upload_queue');
  });

  it('legacy key: stores what is due, answers with the summary, logs one summary line; a wrong key gets 401 and touches nothing', async () => {
    const fn = await serve({ NEOTOMA_DATABASE_URL: pooler.url, SUPABASE_SERVICE_ROLE_KEY: real.serviceRoleKey });
    const jobs = await enqueueJobs(c, 12);
    for (const headers of [{}, bearer('wrong'), bearer(real.secretKey), { apikey: real.anonKey }]) {
      const refused = await call(fn, headers);
      expect(refused.status, JSON.stringify(headers)).toBe(401);
      expect(refused.body.error).toBe('unauthorized');
    }
    expect((await call(fn, bearer(real.serviceRoleKey), 'GET')).status).toBe(405);
    expect(await jobStatus(c)).toEqual({ pending: 12 });

    const ok = await call(fn, bearer(real.serviceRoleKey));
    expect(ok.status, ok.body.message).toBe(200);
    expect(ok.body).toMatchObject({ ended: 'drained', claimed: 12, completed: 12, retried: 0, failed: 0, storage_error: null });
    expect(await jobStatus(c)).toEqual({ completed: 12 });
    for (const j of jobs.slice(0, 3)) expect((await real.download('sources', j.key))?.equals(j.content)).toBe(true);
    const summaries = fn.output.filter((l) => l.includes('invocation summary'));
    expect(summaries).toHaveLength(1);
    expect(JSON.parse(summaries[0]!)).toMatchObject({ level: 'info', completed: 12, ended: 'drained' });
  }, 120_000);

  it('only the new keys (SUPABASE_SECRET_KEYS, no service-role key): the secret key is accepted and used for Storage', async () => {
    const fn = await serve({ NEOTOMA_DATABASE_URL: pooler.url, SUPABASE_SECRET_KEYS: real.secretKeys });
    const jobs = await enqueueJobs(c, 3);
    expect((await call(fn, bearer(real.serviceRoleKey))).status).toBe(401);
    const ok = await call(fn, { apikey: real.secretKey });
    expect(ok.status, ok.body.message).toBe(200);
    expect(ok.body).toMatchObject({ completed: 3 });
    expect((await real.download('sources', jobs[2]!.key))?.equals(jobs[2]!.content)).toBe(true);
  }, 120_000);

  it("Storage's database read-only: retried with 503 DatabaseReadOnly and the retry-2 delay; over a bucket limit: failed, naming it", async () => {
    const fn = await serve({ NEOTOMA_DATABASE_URL: pooler.url, SUPABASE_SERVICE_ROLE_KEY: real.serviceRoleKey });
    await real.createBucket('tiny', 16).catch(() => undefined);
    const jobs = await enqueueJobs(c, 3, undefined, 64);
    await c.query(`UPDATE public.upload_queue SET bucket = 'tiny' WHERE id = $1`, [jobs[2]!.jobId]);
    await real.setReadOnly(true);
    const during = await call(fn, bearer(real.serviceRoleKey)).finally(() => real.setReadOnly(false));
    expect(during.status).toBe(200);
    expect(during.body).toMatchObject({ claimed: 3, completed: 0, retried: 2, failed: 1 });
    const { rows } = await c.query<{ id: string; status: string; retry_count: number; delay_s: number; error_message: string }>(
      `SELECT id, status, retry_count, extract(epoch FROM next_retry_at - updated_at)::float8 AS delay_s, error_message
         FROM public.upload_queue`,
    );
    const byId = new Map(rows.map((r) => [r.id, r]));
    for (const j of jobs.slice(0, 2)) {
      const r = byId.get(j.jobId)!;
      expect(r).toMatchObject({ status: 'pending', retry_count: 1 });
      expect(r.error_message).toMatch(/failed: 503 DatabaseReadOnly: /);
      expect(r.delay_s).toBeGreaterThanOrEqual(60); // retry 2 waits upload_retry_delay(2): 60 s + up to 10 %
      expect(r.delay_s).toBeLessThanOrEqual(66.5);
    }
    expect(byId.get(jobs[2]!.jobId)).toMatchObject({ status: 'failed' });
    expect(byId.get(jobs[2]!.jobId)!.error_message).toMatch(/413 EntityTooLarge: .*bucket "tiny" file_size_limit 16 bytes/);
    expect(fn.output.some((l) => l.includes('invocation summary') && l.includes('"level":"warn"'))).toBe(true);
  }, 120_000);

  it('no bucket: 503 storage_unavailable naming the fix, nothing claimed; SUPABASE_DB_URL serves when NEOTOMA_DATABASE_URL is unset', async () => {
    const fn = await serve({ SUPABASE_DB_URL: pooler.url, SUPABASE_SERVICE_ROLE_KEY: real.serviceRoleKey });
    await enqueueJobs(c, 2);
    await real.deleteBucket('sources');
    try {
      const r = await call(fn, bearer(real.serviceRoleKey));
      expect(r.status).toBe(503);
      expect(r.body).toMatchObject({ error: 'storage_unavailable', ended: 'storage_unavailable', claimed: 0 });
      expect(r.body.message).toMatch(/404 NoSuchBucket: Bucket not found\. Fix: create the private bucket "sources"/);
      expect(await jobStatus(c)).toEqual({ pending: 2 });
    } finally {
      await real.createBucket('sources');
    }
    const ok = await call(fn, bearer(real.serviceRoleKey));
    expect(ok.body).toMatchObject({ completed: 2 });
  }, 120_000);

  it('a database without neotoma-ops (e.g. after a rollback): 500 naming the setting that points there', async () => {
    const fn = await serve({ SUPABASE_DB_URL: real.databaseUrl, SUPABASE_SERVICE_ROLE_KEY: real.serviceRoleKey });
    const r = await call(fn, bearer(real.serviceRoleKey));
    expect(r.status).toBe(500);
    expect(r.body.message).toMatch(/Run "neotoma-ops migrate up" against the database SUPABASE_DB_URL names/);
  }, 120_000);
});
