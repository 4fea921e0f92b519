import type pg from 'pg';
import { readOpsMetrics, type OpsMetricRow } from '../metrics/registry.js';
import { duration, fit, shortId, table, when } from './format.js';

/** The JSON shape of `neotoma-ops status --json` (docs/schemas/status.schema.json). */
export interface StatusReport {
  generated_at: string;
  upload_queue: {
    depth: Record<'pending' | 'in_progress' | 'failed' | 'completed', number>;
    oldest_due_age_seconds: number;
    totals: Record<string, number>;
    recent_failures: Array<{
      job_id: string;
      user_id: string;
      status: string;
      retry_count: number;
      updated_at: string;
      error_message: string | null;
    }>;
  };
  interpretations: {
    timeouts_total: number;
    stale_runs: Array<{ run_id: string; user_id: string; status: string; timeout_at: string; heartbeat_at: string | null }>;
  };
  cron_jobs: Array<{
    job: string;
    schedule: string;
    active: boolean;
    last_status: string | null;
    last_start: string | null;
    last_success: string | null;
    failures: number;
    healthy: boolean;
    reason: string | null;
  }>;
  quota: {
    rejections: Record<string, number>;
    top_users: Array<{
      user_id: string;
      plan: string;
      used_bytes: number;
      limit_bytes: number | null;
      used_human: string;
      limit_human: string;
      percent_used: number | null;
      interpretations_used: number;
      interpretations_limit: number | null;
      state: string;
    }>;
  };
}

function pick(rows: OpsMetricRow[], metric: string, label?: [string, string]): number {
  const row = rows.find((r) => r.metric === metric && (!label || r.labels[label[0]] === label[1]));
  return row ? row.value : 0;
}

const iso = (v: Date | string | null): string | null => (v === null ? null : new Date(v).toISOString());

export async function collectStatus(db: pg.Client | pg.Pool): Promise<StatusReport> {
  const metrics = await readOpsMetrics(db);
  const failures = await db.query<{
    id: string; user_id: string; status: string; retry_count: number; updated_at: Date; error_message: string | null;
  }>(`SELECT id, user_id, status, retry_count, updated_at, error_message
        FROM public.upload_queue
       WHERE error_message IS NOT NULL AND status IN ('failed', 'pending')
       ORDER BY updated_at DESC
       LIMIT 5`);
  const stale = await db.query<{ id: string; user_id: string; status: string; timeout_at: Date; heartbeat_at: Date | null }>(
    `SELECT id, user_id, status, timeout_at, heartbeat_at
       FROM public.interpretation_runs
      WHERE neotoma_ops.interpretation_run_is_stale(status, timeout_at)
      ORDER BY timeout_at
      LIMIT 5`,
  );
  const cron = await db.query<{
    jobname: string; schedule: string; active: boolean; last_status: string | null; last_start: Date | null;
    last_success: Date | null; failures: string; healthy: boolean; reason: string | null;
  }>('SELECT jobname, schedule, active, last_status, last_start, last_success, failures, healthy, reason FROM public.cron_job_health()');
  const top = await db.query<{
    user_id: string; plan_id: string; used_bytes: string; limit_bytes: string | null; used_human: string;
    limit_human: string; percent_used: string | null;
    interpretations_used: number; interpretations_limit: number | null; state: string;
  }>(`SELECT user_id, plan_id, used_bytes, limit_bytes, used_human, limit_human, percent_used, interpretations_used, interpretations_limit, state
        FROM public.storage_usage_report
       ORDER BY percent_used DESC NULLS LAST, used_bytes DESC
       LIMIT 5`);

  const totals: Record<string, number> = {};
  for (const r of metrics) if (r.metric.startsWith('upload_') && r.metric.endsWith('_total')) totals[r.metric] = r.value;
  const rejections: Record<string, number> = {};
  for (const r of metrics) if (r.metric === 'quota_rejections_total') rejections[r.labels.resource ?? 'unknown'] = r.value;

  return {
    generated_at: new Date().toISOString(),
    upload_queue: {
      depth: {
        pending: pick(metrics, 'upload_queue_jobs', ['status', 'pending']),
        in_progress: pick(metrics, 'upload_queue_jobs', ['status', 'in_progress']),
        failed: pick(metrics, 'upload_queue_jobs', ['status', 'failed']),
        completed: pick(metrics, 'upload_queue_jobs', ['status', 'completed']),
      },
      oldest_due_age_seconds: pick(metrics, 'upload_queue_oldest_due_age_seconds'),
      totals,
      recent_failures: failures.rows.map((r) => ({
        job_id: r.id, user_id: r.user_id, status: r.status, retry_count: r.retry_count,
        updated_at: new Date(r.updated_at).toISOString(), error_message: r.error_message,
      })),
    },
    interpretations: {
      timeouts_total: pick(metrics, 'interpretation_timeouts_total'),
      stale_runs: stale.rows.map((r) => ({
        run_id: r.id, user_id: r.user_id, status: r.status, timeout_at: new Date(r.timeout_at).toISOString(),
        heartbeat_at: iso(r.heartbeat_at),
      })),
    },
    cron_jobs: cron.rows.map((r) => ({
      job: r.jobname, schedule: r.schedule, active: r.active, last_status: r.last_status, last_start: iso(r.last_start),
      last_success: iso(r.last_success), failures: Number(r.failures), healthy: r.healthy, reason: r.reason,
    })),
    quota: {
      rejections,
      top_users: top.rows.map((r) => ({
        user_id: r.user_id, plan: r.plan_id, used_bytes: Number(r.used_bytes),
        limit_bytes: r.limit_bytes === null ? null : Number(r.limit_bytes),
        used_human: r.used_human, limit_human: r.limit_human,
        percent_used: r.percent_used === null ? null : Number(r.percent_used),
        interpretations_used: r.interpretations_used, interpretations_limit: r.interpretations_limit, state: r.state,
      })),
    },
  };
}

/** The terminal overview: every line fits 100 columns. */
export function renderStatus(s: StatusReport): string {
  const q = s.upload_queue;
  const t = (name: string): number => q.totals[name] ?? 0;
  const lines: string[] = [
    `neotoma-ops status at ${when(s.generated_at)} UTC`,
    '',
    'Upload queue',
    `  pending ${q.depth.pending} (oldest due ${q.depth.pending ? duration(q.oldest_due_age_seconds) : '-'})` +
      `   in progress ${q.depth.in_progress}   failed ${q.depth.failed}   completed ${q.depth.completed}`,
    `  retries ${t('upload_retries_total')}   retry failures ${t('upload_retry_failures_total')}` +
      `   terminal failures ${t('upload_terminal_failures_total')}   stored ${t('upload_completed_total')}`,
  ];
  if (q.recent_failures.length) {
    lines.push('  recent failures:');
    lines.push(
      ...table(
        q.recent_failures.map((f) => [shortId(f.job_id), f.status, `retries ${f.retry_count}`, when(f.updated_at), (f.error_message ?? '').replace(/\s+/g, ' ')]),
        '    ',
      ),
    );
  }
  lines.push('', 'Interpretations', `  timeouts ${s.interpretations.timeouts_total}   stale now ${s.interpretations.stale_runs.length}`);
  if (s.interpretations.stale_runs.length) {
    lines.push(
      ...table(
        s.interpretations.stale_runs.map((r) => [shortId(r.run_id), r.status, `timed out ${when(r.timeout_at)}`, `last heartbeat ${when(r.heartbeat_at)}`]),
        '    ',
      ),
    );
  }
  lines.push('', 'pg_cron jobs');
  lines.push(
    ...table([
      ['job', 'schedule', 'last run', 'last success', 'failures', 'state'],
      ...s.cron_jobs.map((j) => [
        j.job, j.schedule, j.last_start ? `${when(j.last_start)} ${j.last_status ?? ''}` : 'never', when(j.last_success),
        String(j.failures), j.healthy ? 'ok' : `ALERT: ${j.reason ?? ''}`,
      ]),
    ]),
  );
  const r = s.quota.rejections;
  lines.push('', 'Quotas', `  rejections: storage ${r.storage ?? 0}   interpretations ${r.interpretations ?? 0}   file size ${r.file_size ?? 0}`);
  if (s.quota.top_users.length) {
    lines.push(
      ...table([
        ['user', 'plan', 'storage used / limit', 'percent', 'interpretations', 'state'],
        ...s.quota.top_users.map((u) => [
          shortId(u.user_id), u.plan, `${u.used_human} / ${u.limit_human}`,
          u.percent_used === null ? '-' : `${u.percent_used}%`,
          `${u.interpretations_used} / ${u.interpretations_limit ?? 'unlimited'}`, u.state,
        ]),
      ]),
    );
  }
  return lines.map((l) => fit(l)).join('\n');
}
