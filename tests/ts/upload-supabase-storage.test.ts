// The upload worker against the real Supabase Storage API server: uploads that fail for a moment (Storage's
// database read-only) are retried and stored once it is writable again; a missing bucket or a key of another project
// fails no job when the worker starts and stops claiming when it meets one mid-run, with the fix in its log and
// /healthz, and resumes by itself once the bucket exists.
import type pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SupabaseStorage } from '../../src/storage/index.js';
import { UploadWorker } from '../../src/worker/worker.js';
import { client, runCli, type Throwaway } from './helpers/db.js';
import { jwtFor, realPartsTitle, startRealStorage, storageMissing, type RealStorage } from './helpers/real-storage.js';
import { enqueueJobs, jobStatus, makeDue, migratedCluster, waitFor } from './helpers/upload.js';

let db: Throwaway;
let c: pg.Client;
let real: RealStorage;

const supabaseEnv = (key = real.serviceRoleKey): Record<string, string> => ({
  DATABASE_URL: db.url, STORAGE_BACKEND: 'supabase', SUPABASE_URL: real.url, SUPABASE_SERVICE_ROLE_KEY: key,
  METRICS_PORT: 'off', LOG_FORMAT: 'json',
});

describe.skipIf(storageMissing)(realPartsTitle('the upload worker against the real Supabase Storage server'), () => {
  beforeAll(async () => {
    [db, real] = await Promise.all([migratedCluster(), startRealStorage()]);
    c = await client(db.url);
  }, 300_000);
  afterAll(async () => {
    await c?.end();
    await Promise.all([db?.destroy(), real?.stop()]);
  });
  beforeEach(async () => {
    await c.query('DELETE FROM public.upload_queue');
  });

  it('a read-only window of Storage: every job retried with 503 DatabaseReadOnly, then stored once writable', async () => {
    const jobs = await enqueueJobs(c, 3);
    await real.setReadOnly(true);
    const during = await runCli(['worker', '--once'], supabaseEnv()).finally(() => real.setReadOnly(false));
    expect(during.code, during.stderr).toBe(0);
    expect(during.stdout).toMatch(/retryable failure: supabase: upload of sources\/\S+ failed: 503 DatabaseReadOnly: The database is currently in read-only mode/);
    const { rows } = await c.query<{ status: string; retry_count: number; error_message: string; storage_status: string }>(
      `SELECT q.status, q.retry_count, q.error_message, s.storage_status
         FROM public.upload_queue q JOIN public.sources s ON s.id = q.source_id`,
    );
    expect(rows).toHaveLength(3);
    for (const r of rows) {
      expect(r).toMatchObject({ status: 'pending', retry_count: 1, storage_status: 'pending' });
      expect(r.error_message).toMatch(/ failed: 503 DatabaseReadOnly: /);
    }

    await makeDue(c);
    const after = await runCli(['worker', '--once'], supabaseEnv());
    expect(after.code, after.stderr).toBe(0);
    expect(await jobStatus(c)).toEqual({ completed: 3 });
    for (const j of jobs) expect((await real.download('sources', j.key))?.equals(j.content), j.key).toBe(true);
    const uploaded = await c.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM public.sources WHERE id = ANY($1::uuid[]) AND storage_status = 'uploaded'`,
      [jobs.map((j) => j.sourceId)],
    );
    expect(uploaded.rows[0]!.n).toBe(3);
  }, 60_000);

  it('no bucket "sources": worker --once claims nothing and exits 2 with the fix; a key of another project likewise', async () => {
    await enqueueJobs(c, 2);
    await real.deleteBucket('sources');
    try {
      const r = await runCli(['worker', '--once'], supabaseEnv());
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/storage refuses every upload; nothing more was claimed: .*404 NoSuchBucket: Bucket not found\. Fix: create the private bucket "sources"/);
      expect(r.stderr).toMatch(/neotoma-ops requeue --all-failed/);
    } finally {
      await real.createBucket('sources');
    }
    const foreign = await runCli(['worker', '--once'], supabaseEnv(await jwtFor('service_role', 'another-project-secret-0123456789abcdef')));
    expect(foreign.code).toBe(2);
    expect(foreign.stderr).toMatch(/403 AccessDenied: .*Fix: the key is not a service-role or secret key of the project at SUPABASE_URL/);
    const { rows } = await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM public.upload_queue WHERE status = 'pending' AND retry_count = 0 AND locked_by IS NULL`);
    expect(rows[0]!.n).toBe(2);
  }, 60_000);

  it('a bucket missing mid-run: that job fails with the fix, claiming pauses (/healthz says why), and resumes once it exists', async () => {
    const jobs = await enqueueJobs(c, 4);
    // one job names a bucket that does not exist; the other three wait behind it
    await c.query(`UPDATE public.upload_queue SET bucket = 'archive', next_retry_at = now() - interval '1 hour' WHERE id = $1`, [jobs[0]!.jobId]);
    await c.query(`UPDATE public.upload_queue SET next_retry_at = now() + interval '1 hour' WHERE id <> $1`, [jobs[0]!.jobId]);
    const lines: string[] = [];
    const worker = new UploadWorker({
      databaseUrl: db.url, storage: new SupabaseStorage({ url: real.url, key: real.secretKey }), concurrency: 1, pollIntervalMs: 100,
      log: (l) => lines.push(l),
    });
    const running = worker.run();
    try {
      const blocked = await waitFor('claiming paused', async () => (worker.health().storage_error ? worker.health() : undefined));
      expect(blocked.healthy).toBe(false);
      expect(blocked.reasons.join(' ')).toMatch(/storage refuses every upload, claiming paused: .*404 NoSuchBucket.*create the private bucket "archive"/);
      const failed = await c.query<{ status: string; error_message: string }>('SELECT status, error_message FROM public.upload_queue WHERE id = $1', [jobs[0]!.jobId]);
      expect(failed.rows[0]!.status).toBe('failed');
      expect(failed.rows[0]!.error_message).toMatch(/404 NoSuchBucket: Bucket not found\. Fix: create the private bucket "archive" .*requeue --all-failed/);
      // due work is not claimed while storage refuses uploads
      await makeDue(c);
      await new Promise((r) => setTimeout(r, 1500));
      expect(await jobStatus(c)).toEqual({ failed: 1, pending: 3 });

      await real.createBucket('archive');
      await waitFor('claiming resumed and the rest stored', async () => ((await jobStatus(c)).completed === 3 ? true : undefined), 45_000);
      expect(worker.health().storage_error).toBeNull();
      expect(lines.join('\n')).toMatch(/storage accepts uploads into archive again: claiming resumes.*requeue --all-failed/s);
      const requeue = await runCli(['requeue', '--all-failed'], { DATABASE_URL: db.url });
      expect(requeue.code, requeue.stderr).toBe(0);
      await waitFor('the requeued job stored', async () => ((await jobStatus(c)).completed === 4 ? true : undefined), 20_000);
      expect((await real.download('archive', jobs[0]!.key))?.equals(jobs[0]!.content)).toBe(true);
    } finally {
      worker.stop();
      await running;
    }
  }, 90_000);

  it("a file over the bucket's file_size_limit fails for good, naming that limit", async () => {
    await real.createBucket('tiny', 16);
    const [job] = await enqueueJobs(c, 1, undefined, 64);
    await c.query(`UPDATE public.upload_queue SET bucket = 'tiny' WHERE id = $1`, [job!.jobId]);
    const r = await runCli(['worker', '--once'], supabaseEnv());
    expect(r.code, r.stderr).toBe(0);
    const { rows } = await c.query<{ status: string; error_message: string }>('SELECT status, error_message FROM public.upload_queue WHERE id = $1', [job!.jobId]);
    expect(rows[0]!.status).toBe('failed');
    expect(rows[0]!.error_message).toMatch(/413 EntityTooLarge: The object exceeded the maximum allowed size\. Fix: the file \(64 bytes\) is over the limit of Storage \(bucket "tiny" file_size_limit 16 bytes\)/);
  }, 60_000);
});
