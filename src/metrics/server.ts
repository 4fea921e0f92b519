import http from 'node:http';
import type pg from 'pg';
import client from 'prom-client';
import type { WorkerHealth } from '../worker/worker.js';

export interface HealthReport {
  status: 'ok' | 'unhealthy';
  reasons: string[];
  jobs: Array<{ job: string; healthy: boolean; reason: string | null }>;
  /** The serving worker's own state, when a worker serves the endpoint. */
  worker?: WorkerHealth;
}

/** Database reachable and every pg_cron job of the project healthy (public.cron_job_health()). */
export async function checkHealth(db: pg.Pool): Promise<HealthReport> {
  try {
    const { rows } = await db.query<{ jobname: string; healthy: boolean; reason: string | null }>(
      'SELECT jobname, healthy, reason FROM public.cron_job_health()',
    );
    const jobs = rows.map((r) => ({ job: r.jobname, healthy: r.healthy, reason: r.reason }));
    const reasons = jobs.filter((j) => !j.healthy).map((j) => `pg_cron job ${j.job}: ${j.reason ?? 'unhealthy'}`);
    return { status: reasons.length ? 'unhealthy' : 'ok', reasons, jobs };
  } catch (err) {
    return { status: 'unhealthy', reasons: [`database unreachable: ${(err as Error).message}`], jobs: [] };
  }
}

export interface MetricsServerOptions {
  db: pg.Pool;
  registry: client.Registry;
  host?: string;
  port?: number;
  /** The worker's own health, added to /healthz (503 when it is not healthy). */
  worker?: () => WorkerHealth | undefined;
}

/** Serves GET /metrics (Prometheus text) and GET /healthz (200 or 503 with JSON reasons). */
export async function startMetricsServer(options: MetricsServerOptions): Promise<http.Server> {
  const { db, registry } = options;
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') {
      res.writeHead(405, { allow: 'GET' }).end();
      return;
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics unavailable: ${err.message}\n`),
      );
      return;
    }
    if (path === '/healthz') {
      void checkHealth(db).then((h) => {
        const w = options.worker?.();
        const report: HealthReport = w
          ? { ...h, status: h.status === 'ok' && w.healthy ? 'ok' : 'unhealthy', reasons: [...w.reasons.map((r) => `worker: ${r}`), ...h.reasons], worker: w }
          : h;
        res.writeHead(report.status === 'ok' ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(report));
      });
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics or /healthz\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 9464, options.host ?? '127.0.0.1', () => resolve());
  });
  return server;
}
