// Runs once per test run: settings and number parsing; no database is involved.
// The worker's settings and the one number parser behind every numeric setting and option.
import { describe, expect, it } from 'vitest';
import { OperationalError } from '../../src/errors.js';
import { describeNumberRule, numberFromEnv, parseNumber } from '../../src/parse-number.js';
import { WORKER_DEFAULTS, workerSettingsFromEnv } from '../../src/worker/config.js';

describe('parseNumber', () => {
  it('accepts whole numbers of at least 1 by default, trimmed', () => {
    expect(parseNumber(' 7 ')).toBe(7);
    expect(parseNumber('1e3')).toBe(1000);
    for (const bad of ['0', '-1', '1.5', '', '  ', 'x', 'Infinity', 'NaN']) expect(parseNumber(bad), bad).toBeUndefined();
  });

  it('follows the rule it is given', () => {
    expect(parseNumber('0.5', { min: 0.5, whole: false })).toBe(0.5);
    expect(parseNumber('0.4', { min: 0.5, whole: false })).toBeUndefined();
    expect(parseNumber('0', { min: 0 })).toBe(0);
    expect(describeNumberRule({ min: 0.5, whole: false })).toBe('a number of at least 0.5');
    expect(describeNumberRule()).toBe('a whole number of at least 1');
  });

  it('numberFromEnv: the fallback when unset or empty, else the value, else an error naming the variable', () => {
    expect(numberFromEnv({}, 'N', 9)).toBe(9);
    expect(numberFromEnv({ N: ' ' }, 'N', 9)).toBe(9);
    expect(numberFromEnv({ N: '12' }, 'N', 9)).toBe(12);
    expect(() => numberFromEnv({ N: 'soon' }, 'N', 9)).toThrow(OperationalError);
    expect(() => numberFromEnv({ N: 'soon' }, 'N', 9)).toThrow('N must be a whole number of at least 1, got "soon".');
  });
});

describe('workerSettingsFromEnv', () => {
  it('gives WORKER_DEFAULTS when nothing is set', () => {
    expect(workerSettingsFromEnv({})).toEqual(WORKER_DEFAULTS);
    expect(WORKER_DEFAULTS).toEqual({ concurrency: 4, pollIntervalMs: 5000, leaseSeconds: 300, uploadTimeoutMs: 120_000, shutdownGraceMs: 10_000 });
  });

  it('reads every variable by its own rule', () => {
    expect(
      workerSettingsFromEnv({
        WORKER_CONCURRENCY: '2', WORKER_POLL_INTERVAL_MS: '250', WORKER_LEASE_SECONDS: '0.5', UPLOAD_TIMEOUT_MS: '1500', SHUTDOWN_GRACE_MS: '0',
      }),
    ).toEqual({ concurrency: 2, pollIntervalMs: 250, leaseSeconds: 0.5, uploadTimeoutMs: 1500, shutdownGraceMs: 0 });
    expect(() => workerSettingsFromEnv({ WORKER_POLL_INTERVAL_MS: '5' })).toThrow(/WORKER_POLL_INTERVAL_MS must be a whole number of at least 10/);
    expect(() => workerSettingsFromEnv({ WORKER_LEASE_SECONDS: '0.1' })).toThrow(/WORKER_LEASE_SECONDS must be a number of at least 0.5/);
  });
});
