// The upload-queue-processor Edge Function's module (the very file `npm run build:edge` puts in
// supabase/functions/upload-queue-processor/) called in-process with web-standard Request/Response, against a real
// database through a real pgbouncer in transaction mode (as Supabase's pooler on port 6543), for what needs uploads
// that take seconds (budgets, overlapping invocations): the stand-in of the Storage API gives those on demand. The
// function under Deno against the real Storage server: edge-function-deno.test.ts.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildEdgeFunction, EDGE_FUNCTION_DIR, EDGE_MODULE } from '../../scripts/build-edge.mjs';
import { projectRoot } from '../../src/paths.js';
import { client, runCli, type Throwaway } from './helpers/db.js';
import { startPgbouncer, type Pgbouncer } from './helpers/pgbouncer.js';
import { StorageStandIn } from './helpers/storage-standin.js';
import { enqueueJobs, jobStatus, migratedCluster } from './helpers/upload.js';

type Handler = (request: Request) => Promise<Response>;
interface EdgeModule {
  uploadQueueProcessorFromEnv(env: Record<string, string | undefined>): Handler;
}
interface Summary {
  ended: string;
  claimed: number;
  completed: number;
  retried: number;
  failed: number;
  released: number;
  lost: number;
  duration_ms: number;
  budget_ms: number;
  worker_id: string;
}

let edge: EdgeModule;
let db: Throwaway;
let pooler: Pgbouncer;
let c: pg.Client;
const standIn = new StorageStandIn();

function handler(budgetSeconds = 20, concurrency = 3): Handler {
  return edge.uploadQueueProcessorFromEnv({
    NEOTOMA_DATABASE_URL: pooler.url,
    SUPABASE_URL: standIn.url,
    SUPABASE_SERVICE_ROLE_KEY: standIn.serviceKey,
    UPLOAD_PROCESSOR_BUDGET_SECONDS: String(budgetSeconds),
    UPLOAD_PROCESSOR_CONCURRENCY: String(concurrency),
  });
}

function post(key: string | null, method = 'POST'): Request {
  return new Request('http://localhost/functions/v1/upload-queue-processor', {
    method,
    headers: { 'content-type': 'application/json', ...(key === null ? {} : { authorization: `Bearer ${key}` }) },
    ...(method === 'POST' ? { body: JSON.stringify({ caller: 'pg_cron' }) } : {}),
  });
}

async function invoke(h: Handler): Promise<Summary> {
  const res = await h(post(standIn.serviceKey));
  const body = (await res.json()) as Summary & { message?: string };
  expect(res.status, body.message).toBe(200);
  expect(res.headers.get('content-type')).toBe('application/json');
  return body;
}

beforeAll(async () => {
  await buildEdgeFunction();
  edge = (await import(pathToFileURL(EDGE_MODULE).href)) as EdgeModule;
  await standIn.start();
  db = await migratedCluster();
  pooler = await startPgbouncer(db.url, 'transaction', 4);
  c = await client(db.url);
}, 120_000);

afterAll(() => Promise.all([c?.end(), pooler?.stop(), standIn.stop()]).then(() => db?.destroy()));

beforeEach(async () => {
  await c.query('DELETE FROM public.upload_queue');
  standIn.behave = () => ({});
  standIn.received.clear();
  standIn.stored.clear();
  standIn.requests.length = 0;
});

describe('the function module as deployed', () => {
  it('imports only pg, @supabase/storage-js and node: built-ins, each npm one mapped in deno.json at the version package.json pins', async () => {
    const bundle = await readFile(EDGE_MODULE, 'utf8');
    const imports = new Set([...bundle.matchAll(/^import .* from "([^"]+)";$/gm)].map((m) => m[1]!));
    const npm = [...imports].filter((s) => !s.startsWith('node:')).sort();
    expect(npm).toEqual(['@supabase/storage-js', 'pg']);
    const deno = JSON.parse(await readFile(path.join(EDGE_FUNCTION_DIR, 'deno.json'), 'utf8')) as { imports: Record<string, string> };
    const pkg = JSON.parse(await readFile(path.join(projectRoot, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    for (const name of npm) expect(deno.imports[name]).toBe(`npm:${name}@${pkg.dependencies[name]}`);
    const entry = await readFile(path.join(EDGE_FUNCTION_DIR, 'index.ts'), 'utf8');
    expect(entry.split('\n').length).toBeLessThanOrEqual(30);
    expect(entry).toMatch(/from '\.\/processor\.mjs'/);
    expect(entry).toMatch(/Deno\.serve\(/);
  });
});

describe('upload-queue-processor through pgbouncer in transaction mode', () => {
  it('refuses a missing or wrong key with 401 and touches nothing; anything but POST gets 405', async () => {
    await enqueueJobs(c, 3);
    const h = handler();
    for (const key of [null, 'wrong-key', `${standIn.serviceKey}x`]) {
      const res = await h(post(key));
      expect(res.status, String(key)).toBe(401);
      expect(((await res.json()) as { error: string }).error).toBe('unauthorized');
    }
    expect((await h(post(standIn.serviceKey, 'GET'))).status).toBe(405);
    expect(await jobStatus(c)).toEqual({ pending: 3 });
    expect(standIn.requests).toHaveLength(0);
  });

  it('a missing or malformed setting is a 500 that names it', async () => {
    const message = async (env: Record<string, string>): Promise<string> => {
      const res = await edge.uploadQueueProcessorFromEnv(env)(post('k'));
      expect(res.status).toBe(500);
      return ((await res.json()) as { message: string }).message;
    };
    expect(await message({ SUPABASE_URL: standIn.url, SUPABASE_SERVICE_ROLE_KEY: 'k' }))
      .toMatch(/^No database: Supabase provides SUPABASE_DB_URL to deployed functions; elsewhere set NEOTOMA_DATABASE_URL/);
    expect(await message({ NEOTOMA_DATABASE_URL: 'mysql://db', SUPABASE_URL: standIn.url, SUPABASE_SERVICE_ROLE_KEY: 'k' }))
      .toMatch(/^NEOTOMA_DATABASE_URL is not a postgres:\/\/ URL: set NEOTOMA_DATABASE_URL to the transaction pooler/);
    expect(await message({ SUPABASE_DB_URL: 'db.example', SUPABASE_URL: standIn.url, SUPABASE_SERVICE_ROLE_KEY: 'k' }))
      .toMatch(/^SUPABASE_DB_URL is not a postgres:\/\/ URL/);
    expect(await message({ SUPABASE_DB_URL: pooler.url, SUPABASE_SERVICE_ROLE_KEY: 'k' })).toMatch(/^Set SUPABASE_URL/);
    expect(await message({ SUPABASE_DB_URL: pooler.url, SUPABASE_URL: standIn.url }))
      .toMatch(/^No Supabase key: set SUPABASE_SECRET_KEY \(sb_secret_…\) or SUPABASE_SERVICE_ROLE_KEY/);
  });

  it('stores every due upload and answers with the summary', async () => {
    const jobs = await enqueueJobs(c, 25);
    const summary = await invoke(handler());
    expect(summary).toMatchObject({ ended: 'drained', claimed: 25, completed: 25, retried: 0, failed: 0, released: 0, lost: 0 });
    expect(summary.worker_id).toMatch(/^edge-/);
    expect(await jobStatus(c)).toEqual({ completed: 25 });
    const one = jobs[11]!;
    expect(standIn.objects.get(`sources/${one.key}`)?.body.equals(one.content)).toBe(true);
    const { rows } = await c.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM public.sources WHERE id = ANY($1::uuid[]) AND storage_status = 'uploaded'`,
      [jobs.map((j) => j.sourceId)],
    );
    expect(rows[0]!.n).toBe(25);
  });

  it('a budget that ends mid-batch returns in time with every claimed job completed or back in the queue', async () => {
    const jobs = await enqueueJobs(c, 40);
    standIn.behave = () => ({ delayMs: 400 });
    const t0 = Date.now();
    const summary = await invoke(handler(3, 2));
    const elapsed = Date.now() - t0;
    expect(summary.ended).toBe('budget');
    expect(summary.budget_ms).toBe(3000);
    expect(elapsed).toBeLessThan(3000);
    expect(summary.completed).toBeGreaterThan(0);
    expect(summary.completed).toBeLessThan(40);
    expect(summary.lost + summary.released).toBe(0);
    const status = await jobStatus(c);
    expect(status).toEqual({ completed: summary.completed, pending: 40 - summary.completed });
    // the jobs never claimed lost no attempt
    const { rows } = await c.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM public.upload_queue WHERE id = ANY($1::uuid[]) AND status = 'pending' AND retry_count = 0 AND locked_by IS NULL`,
      [jobs.map((j) => j.jobId)],
    );
    expect(rows[0]!.n).toBe(40 - summary.completed);
  });

  it('uploads slower than the budget allows time out as a retryable failure: nothing stays in_progress', async () => {
    // budget 3 s: uploads get 1 s (a third), claiming stops at 1.5 s, the rest is reserved for reporting
    await enqueueJobs(c, 6);
    standIn.behave = () => ({ delayMs: 10_000 });
    const t0 = Date.now();
    const summary = await invoke(handler(3, 2));
    expect(Date.now() - t0).toBeLessThan(3000);
    expect(summary).toMatchObject({ claimed: 4, completed: 0, retried: 4, ended: 'budget' });
    expect(await jobStatus(c)).toEqual({ pending: 6 });
    const { rows } = await c.query<{ retry_count: number; error_message: string | null }>(
      'SELECT retry_count, error_message FROM public.upload_queue ORDER BY retry_count DESC',
    );
    expect(rows.map((r) => r.retry_count)).toEqual([1, 1, 1, 1, 0, 0]);
    expect(rows[0]!.error_message).toMatch(/timed out/);
  }, 20_000);

  it('two overlapping invocations never store a job twice', async () => {
    await enqueueJobs(c, 60);
    standIn.behave = () => ({ delayMs: 30 });
    const [a, b] = await Promise.all([invoke(handler(20, 3)), invoke(handler(20, 3))]);
    expect(a.completed + b.completed).toBe(60);
    expect(a.completed).toBeGreaterThan(0);
    expect(b.completed).toBeGreaterThan(0);
    expect(await jobStatus(c)).toEqual({ completed: 60 });
    expect(standIn.received.size).toBe(60);
    expect([...standIn.received.values()].every((n) => n === 1)).toBe(true);
  });
});

describe('worker --budget: the same loop from the command line', () => {
  it('returns within the budget, exit 0, with every claimed job completed or back in the queue', async () => {
    await enqueueJobs(c, 40);
    standIn.behave = () => ({ delayMs: 400 });
    const t0 = Date.now();
    const r = await runCli(['worker', '--budget', '3', '--concurrency', '2'], {
      DATABASE_URL: pooler.url, STORAGE_BACKEND: 'supabase', SUPABASE_URL: standIn.url, SUPABASE_SERVICE_ROLE_KEY: standIn.serviceKey,
      METRICS_PORT: 'off', LOG_FORMAT: 'json',
    });
    expect(r.code, r.stderr).toBe(0);
    expect(Date.now() - t0).toBeLessThan(3000 + 1500); // + the CLI's start-up
    expect(r.stdout).toMatch(/once within 3000 ms/);
    const status = await jobStatus(c);
    expect(status.in_progress).toBeUndefined();
    expect(status.completed).toBeGreaterThan(0);
    expect(status.pending).toBeGreaterThan(0);
    expect(standIn.storedCount).toBe(status.completed);
  }, 20_000);
});

describe('the cron job of the Edge Function', () => {
  it('is not scheduled by the migrations (0008 scheduled it where pg_net exists, 0010 removes it and says how to schedule it)', async () => {
    const { migrateDown, migrateUp, migrationStatus } = await import('../../src/migrate.js');
    const { throwawayCluster } = await import('./helpers/db.js');
    const db = await throwawayCluster();
    try {
      const job = async (): Promise<{ schedule: string; command: string } | undefined> => {
        const w = await client(db.url);
        try {
          return (await w.query<{ schedule: string; command: string }>(
            `SELECT schedule, command FROM cron.job WHERE jobname = 'upload-queue-edge-function'`)).rows[0];
        } finally {
          await w.end();
        }
      };
      const said: string[] = [];
      await migrateUp(db.url, { log: (l) => said.push(l) });
      expect(said.join('\n')).toMatch(/notice: The upload-queue-edge-function cron job is scheduled on request: .*SELECT public\.schedule_upload_queue_edge_function\('https:\/\/PROJECT\.supabase\.co'/);
      expect(await job()).toBeUndefined();
      // reverting 0010 gives back what 0008 left: the job wherever pg_net is installed
      const w = await client(db.url);
      const hasNet = (await w.query(`SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_net'`)).rowCount === 1;
      await w.end();
      const applied = (await migrationStatus(db.url)).applied;
      await migrateDown(db.url, { count: applied.length - applied.indexOf('0010_upload-queue-edge-function-on-request') });
      if (hasNet) expect(await job()).toEqual({ schedule: '* * * * *', command: 'SELECT public.invoke_upload_queue_processor()' });
      else expect(await job()).toBeUndefined();
      await migrateUp(db.url);
      expect(await job()).toBeUndefined();
    } finally {
      await db.destroy();
    }
  }, 120_000);
});
