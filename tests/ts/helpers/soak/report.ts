import type { SoakReport } from './config.js';
import type { Figures, SoakContext } from './context.js';
import type { Checked } from './invariants.js';

/** The progress line logged every 10 s while the load runs. */
export function progressLine(ctx: SoakContext): string {
  const f = ctx.f;
  return (
    `soak: ${((Date.now() - ctx.t0) / 1000).toFixed(0)} s: offered ${f.offered}, uploaded ${f.uploaded}, queued ${f.queued}, ` +
    `quota ${f.quotaStorage + f.quotaFileSize + f.quotaRuns}, runs ${f.runsStarted}, kills ${f.kills}, restarts ${f.dbRestarts}`
  );
}

/** The report's figures, in the order it prints them (tests read some of them by name). */
export function soakFigures(f: Figures, c: Checked, drainSeconds: number): Record<string, number | string> {
  const { jobs, counters, runs, invariants } = c;
  return {
    'files offered': f.offered,
    'offers skipped (64 calls in flight)': f.backpressure,
    'stored at ingest': f.uploaded,
    'queued at ingest (upload failed)': f.queued,
    'duplicates (same content re-sent)': f.duplicates,
    'quota rejections: storage (PT402)': f.quotaStorage,
    'quota rejections: file size (PT413)': f.quotaFileSize,
    'quota rejections: interpretations (PT402)': f.quotaRuns,
    'jobs enqueued': jobs.total,
    'jobs completed': jobs.completed,
    'jobs failed (retries exhausted)': jobs.failed_exhausted,
    'jobs failed (non-retryable)': jobs.failed_permanent,
    'worker attempts (claims)': counters.upload_retries_total ?? 0,
    'failed attempts': counters.upload_retry_failures_total ?? 0,
    'expired leases rescued': counters.upload_lease_expirations_total ?? 0,
    'keys stored more than once': c.rewritten,
    'temporary files left by killed writers': c.tmpLeft,
    'interpretation runs': f.runsStarted,
    'runs completed with heartbeats': runs.completed,
    'runs abandoned on purpose': f.runsAbandoned,
    'runs timed out by the sweep': runs.timed_out,
    'heartbeated runs timed out during the DB restart': f.runsStoppedBySweep,
    'heartbeated runs cut off by the DB restart (then timed out)': f.runsInterrupted,
    'heartbeat errors (DB down)': f.heartbeatErrors,
    'max seconds a run stayed active past its timeout': f.maxOverdueSeconds.toFixed(2),
    'worker SIGKILLs': f.kills,
    'PostgreSQL restarts': f.dbRestarts,
    'producer retries while the DB was down': f.dbUnavailableRetries,
    'driver ticks (skipped while down)': `${f.ticks} (${f.ticksSkipped})`,
    'usage samples': f.samples,
    'DB outage during the restart (s)': c.outageSeconds.toFixed(1),
    'from end of load to empty queue (s)': drainSeconds.toFixed(1),
    'invariants held': `${invariants.filter((i) => i.held).length}/${invariants.length}`,
  };
}

/** The report as printed by `npm run soak` and the soak test. */
export function formatReport(r: SoakReport): string {
  const out = [`Soak: ${r.seconds} s of load (${r.wallSeconds.toFixed(1)} s wall)`, ''];
  const width = Math.max(...Object.keys(r.figures).map((k) => k.length));
  for (const [k, v] of Object.entries(r.figures)) out.push(`  ${k.padEnd(width)}  ${v}`);
  out.push('', '  storage writes by outcome (producer + workers):');
  for (const [k, v] of Object.entries(r.faults).sort()) out.push(`    ${k.padEnd(12)} ${v}`);
  out.push('', '  invariants:');
  for (const i of r.invariants) out.push(`    [${i.held ? 'held' : 'BROKEN'}] ${i.name}: ${i.detail}`);
  return out.join('\n');
}
