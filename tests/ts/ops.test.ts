import { readFile } from 'node:fs/promises';
import type http from 'node:http';
import path from 'node:path';
import { Ajv } from 'ajv';
import formats from 'ajv-formats';
import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import pg from 'pg';
import client from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readOpsMetrics, registerOpsMetrics, registerWorkerMetrics } from '../../src/metrics/registry.js';
import { startMetricsServer } from '../../src/metrics/server.js';
import { migrateUp } from '../../src/migrate.js';
import { projectRoot } from '../../src/paths.js';
import { runCli, throwawayCluster, type Throwaway } from './helpers/db.js';
import { runOpsScenario, type ScenarioIds } from './helpers/ops-scenario.js';

const JOBS = ['billing-period-reset', 'cron-history-purge', 'stale-interpretation-cleanup', 'storage-usage-reconcile', 'upload-queue-processor'];

/** A validator for one of the documented JSON shapes in docs/schemas/. */
async function validator(name: string) {
  const ajv = new Ajv({ allErrors: true, strict: true });
  // ajv-formats is CommonJS: its function is the default export's default
  (formats as unknown as { default: (a: Ajv) => void }).default(ajv);
  return ajv.compile(JSON.parse(await readFile(path.join(projectRoot, 'docs', 'schemas', name), 'utf8')) as object);
}

describe('monitoring after a scripted scenario', () => {
  let db: Throwaway;
  let pool: pg.Pool;
  let server: http.Server;
  let base: string;
  let ids: ScenarioIds;

  beforeAll(async () => {
    db = await throwawayCluster();
    await migrateUp(db.url);
    pool = new pg.Pool({ connectionString: db.url, max: 4 });
    const c = await pool.connect();
    try {
      // jobs paused: real pg_cron runs must not change the history this suite writes
      // (cron.alter_job: writes to cron.job are revoked from the migrating role on Supabase)
      await c.query('SELECT cron.alter_job(jobid, active := false) FROM cron.job');
      ids = await runOpsScenario(c as unknown as pg.Client);
    } finally {
      c.release();
    }
    const registry = new client.Registry();
    await registerOpsMetrics(registry, pool);
    const worker = registerWorkerMetrics(registry);
    worker.uploadSeconds.observe({ outcome: 'stored' }, 0.2);
    worker.uploadsSucceeded.inc();
    server = await startMetricsServer({ db: pool, registry, port: 0 });
    const addr = server.address() as { port: number };
    base = `http://127.0.0.1:${addr.port}`;
  });

  afterAll(async () => {
    if (server) await new Promise((r) => server.close(r));
    await pool?.end();
    await db?.destroy();
  });

  it('ops_metrics() has the expected value for each event of the scenario', async () => {
    const rows = await readOpsMetrics(pool);
    const v = (metric: string, labels: Record<string, string> = {}): number | undefined =>
      rows.find((r) => r.metric === metric && Object.entries(labels).every(([k, x]) => r.labels[k] === x))?.value;
    expect(v('quota_rejections_total', { resource: 'storage' })).toBe(1);
    expect(v('quota_rejections_total', { resource: 'interpretations' })).toBe(1);
    expect(v('quota_rejections_total', { resource: 'file_size' })).toBe(1);
    expect(v('interpretation_timeouts_total')).toBe(1);
    expect(v('upload_enqueued_total')).toBe(2);
    expect(v('upload_retries_total')).toBe(3);
    expect(v('upload_retry_failures_total')).toBe(2);
    expect(v('upload_terminal_failures_total')).toBe(1);
    expect(v('upload_completed_total')).toBe(1);
    expect(v('upload_queue_jobs', { status: 'failed' })).toBe(1);
    expect(v('upload_queue_jobs', { status: 'completed' })).toBe(1);
    expect(v('upload_queue_jobs', { status: 'pending' })).toBe(0);
    // 600 B of the quota user + the two uploads' bytes, all on plan free
    expect(v('storage_used_bytes', { plan: 'free' })).toBe(600 + 'retried then stored'.length + 'refused by storage'.length);
    expect(v('storage_users_at_or_over_ratio', { ratio: '0.8', resource: 'interpretations' })).toBe(0); // refunded by the timeout
    for (const job of JOBS) expect(v('cron_job_healthy', { cron_job: job })).toBeDefined();
  });

  it('/metrics serves the same figures as Prometheus text that a real parser reads', async () => {
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const families = parsePrometheusTextFormat(await res.text());
    const family = (name: string) => families.find((f) => f.name === name);
    const sample = (name: string, labels: Record<string, string> = {}): number | undefined => {
      const m = family(name)?.metrics.find((s) => Object.entries(labels).every(([k, x]) => s.labels?.[k] === x));
      return m?.value === undefined ? undefined : Number(m.value);
    };
    expect(family('neotoma_quota_rejections_total')?.type).toBe('COUNTER');
    expect(sample('neotoma_quota_rejections_total', { resource: 'storage' })).toBe(1);
    expect(sample('neotoma_quota_rejections_total', { resource: 'interpretations' })).toBe(1);
    expect(sample('neotoma_quota_rejections_total', { resource: 'file_size' })).toBe(1);
    expect(sample('neotoma_interpretation_timeouts_total')).toBe(1);
    expect(sample('neotoma_upload_retry_failures_total')).toBe(2);
    expect(sample('neotoma_upload_terminal_failures_total')).toBe(1);
    expect(family('neotoma_upload_queue_jobs')?.type).toBe('GAUGE');
    expect(sample('neotoma_upload_queue_jobs', { status: 'failed' })).toBe(1);
    expect(family('neotoma_worker_upload_duration_seconds')?.type).toBe('HISTOGRAM');
    expect(sample('neotoma_worker_uploads_succeeded_total')).toBe(1);
    // database-wide values say so (aggregate them with max(), not sum()); worker values do not
    expect(family('neotoma_upload_queue_jobs')?.metrics.every((m) => m.labels?.scope === 'database')).toBe(true);
    expect(family('neotoma_worker_uploads_succeeded_total')?.metrics.every((m) => m.labels?.scope === undefined)).toBe(true);
    // the pg_cron job is `cron_job`: Prometheus gives `job` to every scrape target
    const cron = family('neotoma_cron_job_healthy')?.metrics ?? [];
    expect(cron.map((m) => m.labels?.cron_job).sort()).toEqual([...JOBS].sort());
    expect(cron.every((m) => m.labels?.job === undefined)).toBe(true);
    // the process itself
    expect(family('process_resident_memory_bytes')?.type).toBe('GAUGE');
    expect(family('process_cpu_seconds_total')?.type).toBe('COUNTER');
  });

  it('/healthz is 200 when every job succeeded recently and 503 naming a job whose last run failed', async () => {
    const c = await pool.connect();
    try {
      await c.query(`SELECT cron.alter_job(jobid, active := true) FROM cron.job`);
      await c.query(
        `INSERT INTO cron.job_run_details (jobid, runid, command, status, start_time, end_time)
         SELECT jobid, 800000000 + jobid, command, 'succeeded', now(), now() FROM cron.job`,
      );
      let res = await fetch(`${base}/healthz`);
      expect(res.status).toBe(200);
      expect(((await res.json()) as { status: string }).status).toBe('ok');

      await c.query(
        `INSERT INTO cron.job_run_details (jobid, runid, command, status, start_time, end_time, return_message)
         SELECT jobid, 810000000 + jobid, command, 'failed', now() + interval '1 second', now() + interval '1 second', 'boom'
           FROM cron.job WHERE jobname = 'upload-queue-processor'`,
      );
      res = await fetch(`${base}/healthz`);
      expect(res.status).toBe(503);
      const body = (await res.json()) as { status: string; reasons: string[] };
      expect(body.status).toBe('unhealthy');
      expect(body.reasons).toEqual(['pg_cron job upload-queue-processor: last run failed']);

      // a job that has not succeeded for longer than twice its period
      await c.query(`DELETE FROM cron.job_run_details WHERE runid >= 800000000`);
      await c.query(
        `INSERT INTO cron.job_run_details (jobid, runid, command, status, start_time, end_time)
         SELECT jobid, 820000000 + jobid, command, 'succeeded',
                now() - CASE WHEN jobname = 'stale-interpretation-cleanup' THEN interval '11 minutes' ELSE interval '1 minute' END,
                now() - CASE WHEN jobname = 'stale-interpretation-cleanup' THEN interval '11 minutes' ELSE interval '1 minute' END
           FROM cron.job`,
      );
      res = await fetch(`${base}/healthz`);
      expect(res.status).toBe(503);
      expect(((await res.json()) as { reasons: string[] }).reasons).toEqual([
        'pg_cron job stale-interpretation-cleanup: no successful run for more than 00:10:00',
      ]);
    } finally {
      await c.query(`DELETE FROM cron.job_run_details WHERE runid >= 800000000`);
      await c.query('SELECT cron.alter_job(jobid, active := false) FROM cron.job');
      c.release();
    }
  });

  it('status --json matches its documented shape and the human output fits 100 columns', async () => {
    const validate = await validator('status.schema.json');
    const r = await runCli(['status', '--json'], { DATABASE_URL: db.url });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as { upload_queue: { recent_failures: Array<{ job_id: string; error_message: string }> } };
    expect(validate(report), JSON.stringify(validate.errors)).toBe(true);
    expect(report.upload_queue.recent_failures[0]?.error_message).toBe('storage answered 403 Forbidden');

    const human = await runCli(['status'], { DATABASE_URL: db.url });
    expect(human.code).toBe(0);
    const lines = human.stdout.trimEnd().split('\n');
    expect(Math.max(...lines.map((l) => l.length))).toBeLessThanOrEqual(100);
    expect(human.stdout).toMatch(/failed 1/);
    expect(human.stdout).toMatch(/storage answered 403 Forbidden/);
    expect(human.stdout).toMatch(/upload-queue-processor/);
  });

  it('usage --json matches its documented shape, for a user with and without usage', async () => {
    const validate = await validator('usage.schema.json');
    const r = await runCli(['usage', ids.quotaUser, '--json'], { DATABASE_URL: db.url });
    expect(r.code).toBe(0);
    const u = JSON.parse(r.stdout) as { used_bytes: number; limit_bytes: number; state: string; percent_used: number };
    expect(validate(u), JSON.stringify(validate.errors)).toBe(true);
    expect([u.used_bytes, u.limit_bytes, u.state, u.percent_used]).toEqual([600, 1000, 'ok', 60]);

    const fresh = await runCli(['usage', '00000000-0000-4000-8000-000000000001', '--json'], { DATABASE_URL: db.url });
    const f = JSON.parse(fresh.stdout) as { plan: string; has_usage_row: boolean };
    expect(validate(f), JSON.stringify(validate.errors)).toBe(true);
    expect([f.plan, f.has_usage_row]).toEqual(['free', false]);

    const human = await runCli(['usage', ids.quotaUser], { DATABASE_URL: db.url });
    expect(human.stdout).toMatch(/storage\s+600 B of 1000 B \(60%\): ok/);
    expect(human.stdout).toMatch(/resets on\s+\d{4}-\d\d-\d\d/);
  });

  it('requeue: a job that is not failed is left alone, an unknown id is named, a failed job is requeued', async () => {
    const notFailed = await runCli(['requeue', ids.completedJobId], { DATABASE_URL: db.url });
    expect(notFailed.code).toBe(2);
    expect(notFailed.stderr).toMatch(new RegExp(`upload job ${ids.completedJobId} is completed, not failed; nothing changed`));

    const unknown = await runCli(['requeue', '00000000-0000-4000-8000-00000000abcd'], { DATABASE_URL: db.url });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/upload job 00000000-0000-4000-8000-00000000abcd does not exist/);

    const malformed = await runCli(['requeue', 'job-42'], { DATABASE_URL: db.url });
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toMatch(/requeue <job-id> must be a UUID/);

    const state = async (): Promise<string> => {
      const { rows } = await pool.query<{ status: string }>('SELECT status FROM public.upload_queue WHERE id = $1', [ids.completedJobId]);
      return rows[0]!.status;
    };
    expect(await state()).toBe('completed');

    const ok = await runCli(['requeue', '--all-failed', '--since', '2000-01-01'], { DATABASE_URL: db.url });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain(ids.failedJobId);
    const { rows } = await pool.query<{ status: string; retry_count: number }>(
      'SELECT status, retry_count FROM public.upload_queue WHERE id = $1',
      [ids.failedJobId],
    );
    expect(rows[0]).toEqual({ status: 'pending', retry_count: 0 });
  });

  it('plan moves a user and refuses an unknown plan by name', async () => {
    const bad = await runCli(['plan', ids.quotaUser, 'gold'], { DATABASE_URL: db.url });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/unknown plan 'gold'.*Known plans: enterprise, free, pro/);
    const ok = await runCli(['plan', ids.quotaUser, 'pro'], { DATABASE_URL: db.url });
    expect(ok.code).toBe(0);
    const { rows } = await pool.query<{ plan_id: string }>('SELECT plan_id FROM public.storage_usage WHERE user_id = $1', [ids.quotaUser]);
    expect(rows[0]?.plan_id).toBe('pro');
  });
});
