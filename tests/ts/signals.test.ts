// Runs once per test run: in-process signal handling; no database is involved.
// How a long-running command (start, worker) stops: src/signals.ts. Signals are emitted in-process (SIGHUP only:
// the test runner may listen for SIGINT and SIGTERM itself); the worker's and start's own tests send real ones.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { onStopSignals, type StopSignals } from '../../src/signals.js';

const STOP = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
let current: StopSignals | undefined;
afterEach(() => {
  current?.dispose();
  vi.restoreAllMocks();
});

describe('onStopSignals', () => {
  it('listens for SIGINT, SIGTERM and SIGHUP until disposed', () => {
    const before = STOP.map((s) => process.listenerCount(s));
    current = onStopSignals();
    expect(STOP.map((s) => process.listenerCount(s))).toEqual(before.map((n) => n + 1));
    current.dispose();
    expect(STOP.map((s) => process.listenerCount(s))).toEqual(before);
  });

  it('the first signal is told and resolves received; a second calls urgent and exits with 130', async () => {
    const exit = vi.spyOn(process, 'exit').mockImplementation(((code: number) => {
      throw new Error(`exit ${code}`);
    }) as never);
    const told: string[] = [];
    const urgent = vi.fn();
    current = onStopSignals({ onFirst: (sig) => told.push(sig), urgent });
    process.emit('SIGHUP', 'SIGHUP');
    await expect(current.received).resolves.toBe('SIGHUP');
    expect(told).toEqual(['SIGHUP']);
    expect(exit).not.toHaveBeenCalled();
    expect(() => process.emit('SIGHUP', 'SIGHUP')).toThrow('exit 130');
    expect(urgent).toHaveBeenCalledWith('SIGHUP');
  });
});
