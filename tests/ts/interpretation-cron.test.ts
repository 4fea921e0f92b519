// pg_cron really runs the sweep: in a fresh cluster, the stale-interpretation-cleanup job (rescheduled to
// every minute there, same single function call) fails a backdated stale run and records a successful run
// in cron.job_run_details. pg_cron has minute granularity, so this waits up to 75 s (the one long wait of a run
// where docs/supabase.md's guide test does not run).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { migrateUp } from '../../src/migrate.js';
import { client, throwawayCluster, type Throwaway } from './helpers/db.js';
import { makeStale, newRun, runRow, sleep } from './interpretation-fixtures.js';
import { supabaseGuideMissing } from './helpers/real-storage.js';

// A run of the suite waits for pg_cron's minute once: where docs/supabase.md's guide runs against the real parts,
// its Edge Function job firing is that wait, and this test stands down.
const guideRuns = (await supabaseGuideMissing()) === undefined;

describe.skipIf(guideRuns)(`pg_cron job stale-interpretation-cleanup${guideRuns ? " (skipped: this run's one wait for a real pg_cron job is docs/supabase.md's guide test)" : ''}`, () => {
  let tc: Throwaway | undefined;
  let db: pg.Client | undefined;

  beforeAll(async () => {
    tc = await throwawayCluster();
    await migrateUp(tc.url);
    db = await client(tc.url);
  });

  afterAll(async () => {
    await db?.end().catch(() => undefined);
    await tc?.destroy();
  });

  it('fires and fails a stale run', async () => {
    const c = db!;
    const runId = await newRun(c, 'running');
    await makeStale(c, runId);

    const job = await c.query<{ command: string }>(
      `SELECT command FROM cron.job WHERE jobname = 'stale-interpretation-cleanup'`,
    );
    expect(job.rows).toEqual([{ command: 'SELECT public.cleanup_stale_interpretations()' }]);
    // same name, same command: cron.schedule updates the registered job to run every minute
    await c.query(`SELECT cron.schedule('stale-interpretation-cleanup', '* * * * *', $1)`, [job.rows[0]!.command]);

    const deadline = Date.now() + 75_000;
    let succeeded = 0;
    let status = '';
    while (Date.now() < deadline) {
      status = (await runRow(c, runId)).status;
      const runs = await c.query<{ n: string }>(
        `SELECT count(*) AS n FROM cron.job_run_details d JOIN cron.job j ON j.jobid = d.jobid
          WHERE j.jobname = 'stale-interpretation-cleanup' AND d.status = 'succeeded'`,
      );
      succeeded = Number(runs.rows[0]!.n);
      if (status === 'failed' && succeeded > 0) break;
      await sleep(1000);
    }
    expect(succeeded).toBeGreaterThan(0);
    const row = await runRow(c, runId);
    expect(row.status).toBe('failed');
    expect(row.error_message).toBe('Timeout - no heartbeat');
    const counted = await c.query<{ value: string }>(
      `SELECT value FROM neotoma_ops.interpretation_counters WHERE counter = 'timeouts_total'`,
    );
    expect(Number(counted.rows[0]!.value)).toBe(1);
  }, 110_000);
});
