/**
 * The soak: a cluster of its own, 4 upload worker processes on fault-injecting storage, a producer ingesting
 * files for 100 users on small plans at a steady rate, interpretation runs (heartbeated or abandoned), worker
 * SIGKILLs at random intervals, one PostgreSQL restart, and the pg_cron functions called on a fast timer.
 * At the end the storage is healed, the queue drains and the invariants are checked. Used by
 * tests/ts/soak.test.ts (20 s) and `npm run soak` (tests/soak/, 2 minutes by default).
 *
 * Simulated or compressed (see docs/reliability.md, "Soak"): the scheduler (process_upload_queue() and
 * cleanup_stale_interpretations() called every tick instead of every 5 minutes by pg_cron) and the retry clock
 * (each tick backdates next_retry_at of pending jobs, so the 30 s .. 480 s backoff passes in one tick).
 *
 * The parts: run.ts orchestrates; load.ts (users, producer, interpretation runs), faults.ts (faulty storage,
 * kills, the restart), workers.ts (the worker processes), driver.ts (clock, scheduler, samples),
 * invariants.ts (the checks), report.ts (figures and text); context.ts holds what they share.
 */
export { runSoak } from './run.js';
export { formatReport } from './report.js';
export { SOAK_FAULTS } from './faults.js';
export type { Invariant, SoakOptions, SoakReport } from './config.js';
