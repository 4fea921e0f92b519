import { OperationalError } from '../errors.js';
import type { WorkerOptions } from './worker.js';

type Env = Record<string, string | undefined>;

function numberFrom(env: Env, name: string, fallback: number, min: number, integer = true): number {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
    throw new OperationalError(`${name} must be ${integer ? 'a whole number' : 'a number'} of at least ${min}, got "${raw}".`);
  }
  return n;
}

export type WorkerSettings = Required<
  Pick<WorkerOptions, 'concurrency' | 'pollIntervalMs' | 'leaseSeconds' | 'uploadTimeoutMs' | 'shutdownGraceMs'>
>;

/**
 * Worker settings from the environment: WORKER_CONCURRENCY (4), WORKER_POLL_INTERVAL_MS (5000),
 * WORKER_LEASE_SECONDS (300), UPLOAD_TIMEOUT_MS (120000), SHUTDOWN_GRACE_MS (10000).
 */
export function workerSettingsFromEnv(env: Env = process.env): WorkerSettings {
  return {
    concurrency: numberFrom(env, 'WORKER_CONCURRENCY', 4, 1),
    pollIntervalMs: numberFrom(env, 'WORKER_POLL_INTERVAL_MS', 5000, 10),
    leaseSeconds: numberFrom(env, 'WORKER_LEASE_SECONDS', 300, 0.5, false),
    uploadTimeoutMs: numberFrom(env, 'UPLOAD_TIMEOUT_MS', 120_000, 100),
    shutdownGraceMs: numberFrom(env, 'SHUTDOWN_GRACE_MS', 10_000, 0),
  };
}

/** Parses a positive whole number given on the command line. */
export function positiveInteger(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new OperationalError(`${flag} must be a whole number of at least 1, got "${value}".`);
  return n;
}
