// Runs once per test run: the worker processes, the faults and the database restart run on a cluster of the soak's own.
import { describe, expect, it } from 'vitest';
import { formatReport, runSoak } from './helpers/soak/index.js';

// The 20-second soak (the 2-minute one is `npm run soak`): worker processes on fault-injecting storage,
// SIGKILLs, a PostgreSQL restart, quotas and interpretation timeouts, then every invariant checked.
describe('soak (20 s)', () => {
  it('holds every invariant under faults, kills and a database restart', async () => {
    const report = await runSoak({ seconds: 20 });
    console.log(formatReport(report));
    for (const inv of report.invariants) expect.soft(inv.held, `${inv.name}: ${inv.detail}`).toBe(true);
    // the run really exercised what it claims to
    const n = (k: string): number => Number(report.figures[k]);
    expect(n('PostgreSQL restarts')).toBe(1);
    expect(n('worker SIGKILLs')).toBeGreaterThanOrEqual(1);
    expect(n('queued at ingest (upload failed)')).toBeGreaterThan(0);
    expect(n('jobs completed')).toBeGreaterThan(0);
    expect(n('quota rejections: storage (PT402)') + n('quota rejections: file size (PT413)')).toBeGreaterThan(0);
    expect(n('runs timed out by the sweep')).toBeGreaterThan(0);
    const writes = Object.values(report.faults).reduce((a, b) => a + b, 0);
    const injected = writes - (report.faults.ok ?? 0) - (report.faults.inner_error ?? 0) - (report.faults.aborted ?? 0);
    expect(injected / writes).toBeGreaterThan(0.08);
    expect(report.wallSeconds).toBeLessThan(40);
  }, 90_000);
});
