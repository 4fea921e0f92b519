// docs/supabase.md followed literally, on a Supabase-shaped database holding Neotoma v0.2.0's rows, with the real
// parts: Storage API server in the same database (as on Supabase), pg_cron, Vault, pg_net, the Edge Function under
// Deno behind pgbouncer in transaction mode. Every `sql step:…` / `sh step:…` block of the guide runs in order, with
// PROJECT, the keys and the password replaced by this test's. The real pg_cron job fires once (at most 75 s).
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildEdgeFunction } from '../../scripts/build-edge.mjs';
import { startEdgeFunction, startStorageServer, type EdgeFunction, type StorageServer } from '../../scripts/supabase-stack.mjs';
import { projectRoot } from '../../src/paths.js';
import { client, testDatabaseUrl, testMode, throwawayCluster, type Throwaway } from './helpers/db.js';
import { startPgbouncer, type Pgbouncer } from './helpers/pgbouncer.js';
import { realPartsTitle, storageMissing } from './helpers/real-storage.js';
import { enqueueJobs, jobStatus, waitFor } from './helpers/upload.js';
import { loadV020 } from './helpers/v020-fixture.js';

const execFileP = promisify(execFile);

/** The guide's executable steps, by name. */
async function guideSteps(): Promise<Map<string, { lang: 'sql' | 'sh'; body: string }>> {
  const doc = await readFile(path.join(projectRoot, 'docs', 'supabase.md'), 'utf8');
  const steps = new Map<string, { lang: 'sql' | 'sh'; body: string }>();
  for (const m of doc.matchAll(/^([ \t]*)```(sql|sh) step:([\w-]+)\n([\s\S]*?)^[ \t]*```/gm)) {
    const indent = m[1]!.length;
    steps.set(m[3]!, { lang: m[2] as 'sql' | 'sh', body: m[4]!.split('\n').map((l) => l.slice(indent)).join('\n') });
  }
  return steps;
}

/** Whether the Supabase-shaped clusters of this run have Supabase's own extensions (pg_net, Vault) preloaded. */
async function supabaseExtensionsHere(): Promise<string | undefined> {
  if (testMode !== 'supabase') return 'pg_net and Vault are loaded only in the Supabase-shaped test mode';
  const c = await client(testDatabaseUrl());
  try {
    const { rowCount } = await c.query(`SELECT 1 FROM pg_catalog.pg_extension WHERE extname IN ('pg_net', 'supabase_vault')`);
    return rowCount === 2 ? undefined : 'pg_net and supabase_vault are not installed for this PostgreSQL (../shared/tools/supabase-extensions/build.sh)';
  } finally {
    await c.end();
  }
}

const missing = storageMissing ?? (await supabaseExtensionsHere());

describe.skipIf(missing)(realPartsTitle('docs/supabase.md, step by step, against the real Supabase parts', missing), () => {
  let db: Throwaway;
  let storage: StorageServer;
  let pooler: Pgbouncer;
  let fn: EdgeFunction;
  let c: pg.Client;
  let steps: Map<string, { lang: 'sql' | 'sh'; body: string }>;
  const substitutions: Array<[string, () => string]> = [
    ['postgres://postgres:PASSWORD@db.PROJECT.supabase.co:5432/postgres', () => db.url],
    ['https://PROJECT.supabase.co', () => fn.url],
    ['sb_secret_NEW_KEY', () => 'sb_secret_of_another_project'],
    ['sb_secret_KEY', () => storage.secretKey],
    ['npx neotoma-ops', () => `node ${path.join(projectRoot, 'dist', 'cli.js')}`],
  ];

  async function run(name: string): Promise<{ code: number; output: string }> {
    const step = steps.get(name);
    if (!step) throw new Error(`docs/supabase.md has no step ${name}`);
    let body = step.body;
    for (const [from, to] of substitutions) if (body.includes(from)) body = body.replaceAll(from, to());
    if (step.lang === 'sql') {
      const r = await c.query(body);
      return { code: 0, output: JSON.stringify(Array.isArray(r) ? r.map((x) => x.rows) : r.rows) };
    }
    try {
      const { stdout, stderr } = await execFileP('bash', ['-c', body], { env: { ...process.env, DATABASE_URL: db.url }, maxBuffer: 1 << 22 });
      return { code: 0, output: stdout + stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: e.code ?? 1, output: (e.stdout ?? '') + (e.stderr ?? '') };
    }
  }

  beforeAll(async () => {
    steps = await guideSteps();
    await buildEdgeFunction();
    db = await throwawayCluster();
    await loadV020(db.url, { users: 20, files: 2, runs: 2 });
    const admin = await client(db.adminUrl);
    try {
      storage = await startStorageServer({ databaseUrl: db.adminUrl });
      // what Supabase grants postgres on Storage's schema (supabase/postgres init-scripts 00000000000002-storage-schema.sql)
      await admin.query(`GRANT USAGE ON SCHEMA storage TO postgres, anon, authenticated, service_role;
                         GRANT ALL ON ALL TABLES IN SCHEMA storage TO postgres, service_role`);
    } finally {
      await admin.end();
    }
    c = await client(db.url);
  }, 300_000);
  afterAll(async () => {
    await fn?.stop();
    await c?.end();
    await pooler?.stop();
    await storage?.stop();
    await db?.destroy();
  });

  it('doctor before: the missing bucket is a problem with its fix; pg_net and Vault are there for the Edge Function', async () => {
    const r = await run('doctor-before');
    expect(r.code).toBe(1);
    expect(r.output).toMatch(/storage\s+PROBLEM\s+Supabase Storage has no bucket "sources": every upload would fail/);
    expect(r.output).toMatch(/fix: insert into storage\.buckets \(id, name\) values \('sources', 'sources'\);/);
    expect(r.output).toMatch(/edge function\s+ok\s+pg_net and Vault are installed/);
    expect(r.output).toMatch(/migrations\s+WARN\s+neotoma-ops is not installed/);
  });

  it('the bucket step creates it (and is safe to run twice); the upgrade; the upload limit; doctor after', async () => {
    expect((await run('create-bucket')).output).toMatch(/"id":"sources"/);
    expect((await run('create-bucket')).output).toMatch(/"id":"sources"/);
    const up = await run('migrate-up');
    expect(up.code, up.output).toBe(0);
    expect(up.output).toMatch(/scheduled on request/);
    await run('record-upload-limit');
    const after = await run('doctor-after');
    expect(after.output).toMatch(/storage\s+ok\s+bucket "sources" exists \(no file_size_limit of its own\); global upload limit 52428800 bytes/);
    expect(after.output).toMatch(/storage limit\s+WARN\s+plan free allows files of 100 MiB, but the global upload limit is 50\.0 MiB/);
    expect(after.output).toMatch(/fix: UPDATE public\.plans SET max_file_bytes = 52428800 WHERE id = 'free';/);
    expect(after.output).toMatch(/edge function\s+ok\s+pg_net and Vault are installed: the Edge Function can be scheduled/);
    expect(after.output).toMatch(/^migrations\s+ok/m);
    // a file Storage would refuse is refused before upload, naming Storage's limit
    await expect(c.query(`SELECT public.check_storage_quota(gen_random_uuid(), 60000000)`)).rejects.toMatchObject({
      code: 'PT413', message: expect.stringMatching(/the largest object Storage accepts \(the global upload limit\)/),
    });
    // the bucket's own limit, read from Storage's table in the same database
    await c.query(`UPDATE storage.buckets SET file_size_limit = 1024 WHERE id = 'sources'`);
    try {
      await expect(c.query(`SELECT public.check_storage_quota(gen_random_uuid(), 2048)`)).rejects.toMatchObject({
        code: 'PT413', message: 'File too large for storage: 2.00 KiB exceeds 1.00 KiB, the largest object Storage accepts (bucket sources file_size_limit)',
      });
      const doctorNow = await run('doctor-before');
      expect(doctorNow.output).toMatch(/storage\s+ok\s+bucket "sources" exists \(file_size_limit 1024 bytes\)/);
    } finally {
      await c.query(`UPDATE storage.buckets SET file_size_limit = NULL WHERE id = 'sources'`);
    }
  }, 180_000);

  it("the Edge Function, scheduled with the guide's SQL: the real pg_cron job fires, pg_net calls Deno, the uploads land in Storage", async () => {
    pooler = await startPgbouncer(db.url, 'transaction', 6);
    fn = await startEdgeFunction({
      SUPABASE_URL: storage.url, SUPABASE_DB_URL: pooler.url, SUPABASE_SECRET_KEYS: storage.secretKeys,
      SUPABASE_SERVICE_ROLE_KEY: storage.serviceRoleKey,
    });
    const jobs = await enqueueJobs(c, 5);
    await run('schedule-function');
    const { rows: job } = await c.query<{ schedule: string }>(`SELECT schedule FROM cron.job WHERE jobname = 'upload-queue-edge-function'`);
    expect(job).toEqual([{ schedule: '* * * * *' }]);
    await waitFor('the cron job to fire and the function to store the uploads', async () => ((await jobStatus(c)).completed === 5 ? true : undefined), 75_000, 500);
    const answer = await waitFor('the answer in net._http_response', async () => {
      const { rows } = await c.query<{ status_code: number; content: string }>(
        `SELECT status_code, content FROM net._http_response WHERE status_code = 200 ORDER BY created DESC LIMIT 1`);
      return rows[0];
    });
    expect(JSON.parse(answer.content)).toMatchObject({ ended: 'drained', completed: 5, failed: 0 });
    const { rows: runs } = await c.query<{ status: string }>(
      `SELECT d.status FROM cron.job_run_details d JOIN cron.job j USING (jobid) WHERE j.jobname = 'upload-queue-edge-function'`);
    expect(runs.map((r) => r.status)).toContain('succeeded');
    const { StorageClient } = await import('@supabase/storage-js');
    const sc = new StorageClient(`${storage.url}/storage/v1`, { apikey: storage.secretKey, Authorization: `Bearer ${storage.secretKey}` });
    const { data } = await sc.from('sources').download(jobs[4]!.key);
    expect(Buffer.from(await data!.arrayBuffer()).equals(jobs[4]!.content)).toBe(true);
  }, 120_000);

  it("rotating to a key the function does not accept: the call is answered 401 and touches nothing", async () => {
    await run('rotate-key');
    const [job] = await enqueueJobs(c, 1);
    const { rows } = await c.query<{ id: string }>('SELECT public.invoke_upload_queue_processor() AS id');
    const refused = await waitFor('the answer in net._http_response', async () => {
      const r = await c.query<{ status_code: number; content: string }>('SELECT status_code, content FROM net._http_response WHERE id = $1', [rows[0]!.id]);
      return r.rows[0];
    });
    expect(refused.status_code).toBe(401);
    expect(JSON.parse(refused.content)).toMatchObject({ error: 'unauthorized' });
    const q = await c.query<{ status: string; retry_count: number; locked_by: string | null }>(
      'SELECT status, retry_count, locked_by FROM public.upload_queue WHERE id = $1', [job!.jobId]);
    expect(q.rows[0]).toEqual({ status: 'pending', retry_count: 0, locked_by: null });
    await c.query('DELETE FROM public.upload_queue WHERE id = $1', [job!.jobId]); // the operator drains the queue before a rollback
  }, 60_000);

  it('rolling back: the job and its secrets go, then the migrations; a function left deployed names the setting', async () => {
    await run('unschedule-function');
    expect((await c.query(`SELECT 1 FROM cron.job WHERE jobname = 'upload-queue-edge-function'`)).rowCount).toBe(0);
    expect((await c.query(`SELECT 1 FROM vault.secrets WHERE name LIKE 'neotoma\\_ops\\_%'`)).rowCount).toBe(0);
    const down = await run('rollback');
    expect(down.code, down.output).toBe(0);
    expect((await c.query(`SELECT to_regclass('public.upload_queue') IS NULL AS gone`)).rows[0]).toEqual({ gone: true });
    expect((await c.query(`SELECT count(*)::int AS n FROM public.sources`)).rows[0].n).toBeGreaterThan(0);
    const res = await fetch(`${fn.url}/functions/v1/upload-queue-processor`, { method: 'POST', headers: { authorization: `Bearer ${storage.secretKey}` } });
    expect(res.status).toBe(500);
    expect(((await res.json()) as { message: string }).message).toMatch(/against the database SUPABASE_DB_URL names/);
  }, 120_000);
});
