import client from 'prom-client';
import type pg from 'pg';

/** One row of public.ops_metrics(). */
export interface OpsMetricRow {
  metric: string;
  labels: Record<string, string>;
  value: number;
}

export async function readOpsMetrics(db: pg.Pool | pg.Client): Promise<OpsMetricRow[]> {
  const { rows } = await db.query<{ metric: string; labels: Record<string, unknown> | null; value: number }>(
    'SELECT metric, labels, value FROM public.ops_metrics()',
  );
  return rows.map((r) => ({
    metric: r.metric,
    labels: Object.fromEntries(Object.entries(r.labels ?? {}).map(([k, v]) => [k, String(v)])),
    value: Number(r.value),
  }));
}

/**
 * The database's metrics, by the name ops_metrics() gives them; exported as neotoma_<name>.
 * Names ending in _total are counters (monotonic in the database), the rest gauges.
 */
export const OPS_METRIC_HELP: Record<string, string> = {
  upload_queue_jobs: 'Upload queue jobs by status.',
  upload_queue_oldest_due_age_seconds: 'Age of the oldest pending upload job that is due (0 when none).',
  upload_queue_payload_bytes: 'Payload bytes the upload queue holds (the outage budget in use).',
  upload_queue_payload_bytes_cap: 'Most payload bytes the upload queue may hold (upload_queue_settings.payload_bytes_cap).',
  upload_queue_full_rejections_total: 'Uploads refused because the upload queue held its outage budget (PT503 UPLOAD_QUEUE_FULL).',
  upload_enqueued_total: 'Uploads that failed at ingest and were queued for retry.',
  upload_retries_total: 'Retry attempts started (jobs claimed by a worker).',
  upload_retry_failures_total: 'Retry attempts that failed, expired leases included.',
  upload_lease_expirations_total: 'Leases that expired before their worker completed or failed the job.',
  upload_terminal_failures_total: 'Upload jobs that reached status failed (retries exhausted or non-retryable).',
  upload_completed_total: 'Upload jobs stored and completed.',
  upload_requeued_total: 'Failed upload jobs put back in the queue by an operator.',
  upload_pruned_total: 'Completed upload jobs deleted after their retention.',
  interpretation_timeouts_total: "Interpretation runs failed by the sweep with 'Timeout - no heartbeat'.",
  interpretation_stale_runs: 'Pending or running interpretation runs whose timeout has passed (not yet swept).',
  quota_rejections_total: 'Inserts refused by a quota, by resource (storage, interpretations, file_size).',
  storage_used_bytes: 'Bytes of sources in use, by plan.',
  storage_users: 'Users with a usage row, by plan.',
  storage_users_at_or_over_ratio: 'Users whose storage or interpretation use is at or over a share of their limit.',
  cron_job_last_success_age_seconds: 'Seconds since the last successful run of a pg_cron job (-1: never).',
  cron_job_failures_total: 'Failed runs of a pg_cron job in the retained run history.',
  cron_job_healthy: '1 when the pg_cron job is healthy (see /healthz), else 0.',
};

const PREFIX = 'neotoma_';

/**
 * Registers one collector per database metric on `registry`; a scrape reads ops_metrics() once and
 * fills them all.
 */
export function registerOpsMetrics(registry: client.Registry, db: pg.Pool): void {
  let pending: Promise<OpsMetricRow[]> | undefined;
  // every collector of one scrape shares one query
  const rows = (): Promise<OpsMetricRow[]> => {
    if (!pending) {
      pending = readOpsMetrics(db).finally(() => {
        setImmediate(() => {
          pending = undefined;
        });
      });
    }
    return pending;
  };
  const labelsOf = (name: string): string[] =>
    ({
      upload_queue_jobs: ['status'],
      quota_rejections_total: ['resource'],
      storage_used_bytes: ['plan'],
      storage_users: ['plan'],
      storage_users_at_or_over_ratio: ['ratio', 'resource'],
      cron_job_last_success_age_seconds: ['cron_job'],
      cron_job_failures_total: ['cron_job'],
      cron_job_healthy: ['cron_job'],
    })[name] ?? [];
  // ops_metrics() names the pg_cron job `job`, a label Prometheus gives every scrape target: exported as cron_job
  const exported = (labels: Record<string, string>): Record<string, string> =>
    Object.fromEntries(Object.entries(labels).map(([k, v]) => [k === 'job' ? 'cron_job' : k, v]));

  for (const [name, help] of Object.entries(OPS_METRIC_HELP)) {
    // every worker serves the same database-wide values: labelled scope="database", aggregated with max(), never
    // sum(), across scraped workers (docs/metrics.md)
    const labelNames = [...labelsOf(name), 'scope'];
    const fill = async (set: (labels: Record<string, string>, value: number) => void): Promise<void> => {
      for (const r of await rows()) if (r.metric === name) set({ ...exported(r.labels), scope: 'database' }, r.value);
    };
    if (name.endsWith('_total')) {
      new client.Counter({
        name: PREFIX + name,
        help,
        labelNames,
        registers: [registry],
        async collect() {
          this.reset();
          await fill((labels, value) => this.inc(labels, value));
        },
      });
    } else {
      new client.Gauge({
        name: PREFIX + name,
        help,
        labelNames,
        registers: [registry],
        async collect() {
          this.reset();
          await fill((labels, value) => this.set(labels, value));
        },
      });
    }
  }
}

/** Metrics of the upload worker process itself (summed across workers), and the process_* / nodejs_* defaults. */
export interface WorkerMetrics {
  uploadSeconds: client.Histogram<'outcome'>;
  uploadsSucceeded: client.Counter;
  uploadsFailed: client.Counter<'retryable' | 'status' | 'code'>;
  /** Reads the worker's health at each scrape (see UploadWorker.health()). */
  setHealth(read: () => { healthy: boolean; last_claim_age_seconds: number | null } | undefined): void;
}

export function registerWorkerMetrics(registry: client.Registry): WorkerMetrics {
  client.collectDefaultMetrics({ register: registry });
  let read: (() => { healthy: boolean; last_claim_age_seconds: number | null } | undefined) | undefined;
  new client.Gauge({
    name: `${PREFIX}worker_healthy`,
    help: '1 when this worker claims and listens as it should (its /healthz would say ok for the worker), else 0.',
    registers: [registry],
    collect() {
      const h = read?.();
      if (h) this.set(h.healthy ? 1 : 0);
    },
  });
  new client.Gauge({
    name: `${PREFIX}worker_last_claim_age_seconds`,
    help: 'Seconds since a claim of this worker last got an answer from the database (-1: never).',
    registers: [registry],
    collect() {
      const h = read?.();
      if (h) this.set(h.last_claim_age_seconds ?? -1);
    },
  });
  return {
    setHealth(r) {
      read = r;
    },
    uploadSeconds: new client.Histogram({
      name: `${PREFIX}worker_upload_duration_seconds`,
      help: 'Time to store one upload job in storage, by outcome.',
      labelNames: ['outcome'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers: [registry],
    }),
    uploadsSucceeded: new client.Counter({
      name: `${PREFIX}worker_uploads_succeeded_total`,
      help: 'Upload jobs this worker stored and completed.',
      registers: [registry],
    }),
    uploadsFailed: new client.Counter({
      name: `${PREFIX}worker_uploads_failed_total`,
      help: 'Upload attempts of this worker that failed, by whether they will be retried and by the status and code storage gave.',
      labelNames: ['retryable', 'status', 'code'],
      registers: [registry],
    }),
  };
}
