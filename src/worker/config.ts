import { numberFromEnv, type NumberRule } from '../parse-number.js';
import type { WorkerOptions } from './worker.js';

export type WorkerSettings = Required<
  Pick<WorkerOptions, 'concurrency' | 'pollIntervalMs' | 'leaseSeconds' | 'uploadTimeoutMs' | 'shutdownGraceMs'>
>;

interface SettingSpec {
  variable: string;
  fallback: number;
  rule: NumberRule;
  /** What it means, for `--help`. */
  meaning: string;
}

/** Each worker setting: its environment variable, default, accepted values and meaning. The one place of each. */
const WORKER_SETTINGS: Record<keyof WorkerSettings, SettingSpec> = {
  pollIntervalMs: { variable: 'WORKER_POLL_INTERVAL_MS', fallback: 5000, rule: { min: 10 }, meaning: 'claim at least this often' },
  concurrency: { variable: 'WORKER_CONCURRENCY', fallback: 4, rule: { min: 1 }, meaning: 'uploads at once' },
  leaseSeconds: {
    variable: 'WORKER_LEASE_SECONDS', fallback: 300, rule: { min: 0.5, whole: false }, meaning: 'lease per claim, extended while uploading',
  },
  uploadTimeoutMs: { variable: 'UPLOAD_TIMEOUT_MS', fallback: 120_000, rule: { min: 100 }, meaning: 'time allowed for one upload' },
  shutdownGraceMs: { variable: 'SHUTDOWN_GRACE_MS', fallback: 10_000, rule: { min: 0 }, meaning: 'time in-flight uploads get on SIGTERM' },
};

const KEYS = Object.keys(WORKER_SETTINGS) as (keyof WorkerSettings)[];

/** What the worker uses for each setting nobody set. */
export const WORKER_DEFAULTS: Readonly<WorkerSettings> = Object.freeze(
  Object.fromEntries(KEYS.map((k) => [k, WORKER_SETTINGS[k].fallback])) as WorkerSettings,
);

/** Worker settings from the environment (WORKER_CONCURRENCY, WORKER_POLL_INTERVAL_MS, WORKER_LEASE_SECONDS, …). */
export function workerSettingsFromEnv(env: Record<string, string | undefined> = process.env): WorkerSettings {
  return Object.fromEntries(
    KEYS.map((k) => [k, numberFromEnv(env, WORKER_SETTINGS[k].variable, WORKER_SETTINGS[k].fallback, WORKER_SETTINGS[k].rule)]),
  ) as WorkerSettings;
}

/** The `--help` lines of the worker's variables: name, meaning, default. */
export function workerSettingsHelp(indent: string, width: number): string[] {
  return KEYS.map((k) => {
    const s = WORKER_SETTINGS[k];
    return `${indent}${s.variable.padEnd(width)} worker: ${s.meaning} (default ${s.fallback})`;
  });
}
