import type http from 'node:http';
import client from 'prom-client';
import { createPool } from '../db/connect.js';
import { OperationalError } from '../errors.js';
import { registerOpsMetrics, registerWorkerMetrics } from '../metrics/registry.js';
import { startMetricsServer } from '../metrics/server.js';
import type { StorageError } from '../storage/types.js';
import type { UploadOutcome, WorkerHealth } from './worker.js';

export interface WorkerMetricsEndpoint {
  onOutcome(outcome: UploadOutcome, seconds: number, error?: StorageError): void;
  /** Where /healthz reads the worker's own state. */
  setWorker(health: () => WorkerHealth): void;
  close(): Promise<void>;
}

type Env = Record<string, string | undefined>;

/**
 * `/metrics` (ops_metrics() plus this worker's upload metrics) and `/healthz` on METRICS_HOST:METRICS_PORT
 * (127.0.0.1:9464 by default; METRICS_PORT=off serves nothing, 0 picks a free port). A port already taken
 * (another worker on the same host) is reported and the worker runs on without the endpoint.
 */
export async function startWorkerMetrics(
  databaseUrl: string,
  env: Env,
  log: (line: string) => void,
): Promise<WorkerMetricsEndpoint | undefined> {
  const rawPort = env.METRICS_PORT?.trim() || '9464';
  if (rawPort.toLowerCase() === 'off') return undefined;
  const port = Number(rawPort);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new OperationalError(`METRICS_PORT must be a TCP port (0-65535) or "off", got "${env.METRICS_PORT}".`);
  }
  const host = env.METRICS_HOST?.trim() || '127.0.0.1';
  const pool = createPool(databaseUrl, 2, 'neotoma-ops metrics');
  const registry = new client.Registry();
  try {
    await registerOpsMetrics(registry, pool);
  } catch (err) {
    log(`metrics: cannot read the database's metric definitions (${(err as Error).message}); /metrics serves this worker's own metrics only`);
  }
  const m = registerWorkerMetrics(registry);
  let server: http.Server;
  let workerHealth: (() => WorkerHealth) | undefined;
  try {
    server = await startMetricsServer({ db: pool, registry, host, port, worker: () => workerHealth?.() });
  } catch (err) {
    await pool.end().catch(() => undefined);
    const code = (err as { code?: string }).code;
    log(`metrics: cannot listen on ${host}:${port} (${code ?? (err as Error).message}); running without /metrics`);
    return undefined;
  }
  const addr = server.address();
  log(`metrics: http://${host}:${typeof addr === 'object' && addr ? addr.port : port}/metrics and /healthz`);
  return {
    onOutcome(outcome, seconds, error) {
      m.uploadSeconds.observe({ outcome }, seconds);
      // status and code as storage meant them (e.g. 503 DatabaseReadOnly); empty for a timeout or a network error
      const cause = { status: error?.status === undefined ? '' : String(error.status), code: error?.code ?? '' };
      if (outcome === 'stored') m.uploadsSucceeded.inc();
      else if (outcome === 'retryable' || outcome === 'released') m.uploadsFailed.inc({ retryable: 'true', ...cause });
      else if (outcome === 'permanent') m.uploadsFailed.inc({ retryable: 'false', ...cause });
    },
    setWorker(health) {
      workerHealth = health;
      m.setHealth(health);
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await pool.end().catch(() => undefined);
    },
  };
}
