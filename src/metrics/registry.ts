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

/** One row of public.ops_metric_definitions(): what a metric of ops_metrics() is. */
export interface OpsMetricDefinition {
  metric: string;
  type: 'counter' | 'gauge';
  help: string;
  labels: string[];
}

export async function readOpsMetricDefinitions(db: pg.Pool | pg.Client): Promise<OpsMetricDefinition[]> {
  return (await db.query<OpsMetricDefinition>('SELECT metric, type, help, labels FROM public.ops_metric_definitions()')).rows;
}

const PREFIX = 'neotoma_';

/**
 * Registers one collector per metric the database defines (public.ops_metric_definitions(): name, type, help,
 * labels); a scrape reads ops_metrics() once and fills them all. Nothing about a metric is written here: one added
 * in SQL is exported as it is.
 */
export async function registerOpsMetrics(registry: client.Registry, db: pg.Pool): Promise<void> {
  const definitions = await readOpsMetricDefinitions(db);
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
  for (const d of definitions) {
    // every worker serves the same database-wide values: labelled scope="database", aggregated with max(), never
    // sum(), across scraped workers (docs/metrics.md)
    const labelNames = [...d.labels, 'scope'];
    const fill = async (set: (labels: Record<string, string>, value: number) => void): Promise<void> => {
      for (const r of await rows()) if (r.metric === d.metric) set({ ...r.labels, scope: 'database' }, r.value);
    };
    if (d.type === 'counter') {
      new client.Counter({
        name: PREFIX + d.metric,
        help: d.help,
        labelNames,
        registers: [registry],
        async collect() {
          this.reset();
          await fill((labels, value) => this.inc(labels, value));
        },
      });
    } else {
      new client.Gauge({
        name: PREFIX + d.metric,
        help: d.help,
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
