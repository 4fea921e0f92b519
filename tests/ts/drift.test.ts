// The database knows what it should look like: doctor and migrate judge by what the runner recorded the project
// owns. A database broken once in each way a live one really is (an owner's DISABLE TRIGGER, a hot-fixed function,
// a dropped index or check, an edited cron job, row level security off, a stray grant) is reported completely by
// doctor, put back by `migrate up`, and clean afterwards; an object the project did not create is never replaced;
// `migrate down` never destroys data it did not write without being told, and reverts each migration whole.
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DoctorReport } from '../../src/commands/doctor.js';
import { migrateDown, migrateUp, migrationStatus } from '../../src/migrate.js';
import { migrationsDir } from '../../src/paths.js';
import { client, runCli, throwawayCluster, type Throwaway } from './helpers/db.js';
import { enqueueJobs, waitFor } from './helpers/upload.js';
import { loadV020 } from './helpers/v020-fixture.js';

async function doctor(url: string): Promise<{ code: number; report: DoctorReport }> {
  const r = await runCli(['doctor', '--json'], { DATABASE_URL: url });
  return { code: r.code, report: JSON.parse(r.stdout) as DoctorReport };
}

const BREAKAGE = [
  ['disabled', 'trigger quota_sources_insert ON public.sources', 'ALTER TABLE public.sources DISABLE TRIGGER quota_sources_insert'],
  ['disabled', 'trigger interpretation_runs_stamp_timeout ON public.interpretation_runs',
    'ALTER TABLE public.interpretation_runs DISABLE TRIGGER interpretation_runs_stamp_timeout'],
  ['missing', 'constraint sources_file_size_not_negative ON public.sources', 'ALTER TABLE public.sources DROP CONSTRAINT sources_file_size_not_negative'],
  ['missing', 'index public.upload_queue_claim_idx', 'DROP INDEX public.upload_queue_claim_idx'],
  ['altered', 'cron job upload-queue-processor',
    `SELECT cron.alter_job(jobid, command => 'SELECT 1') FROM cron.job WHERE jobname = 'upload-queue-processor'`],
  ['altered', 'cron job stale-interpretation-cleanup',
    `SELECT cron.alter_job(jobid, schedule => '0 0 31 2 *') FROM cron.job WHERE jobname = 'stale-interpretation-cleanup'`],
  ['altered', 'function public.check_storage_quota(uuid, bigint)',
    `CREATE OR REPLACE FUNCTION public.check_storage_quota(p_user_id uuid, p_bytes bigint) RETURNS void LANGUAGE plpgsql SET search_path = '' AS $$ BEGIN END $$`],
  ['altered', 'function public.cleanup_stale_interpretations()',
    `CREATE OR REPLACE FUNCTION public.cleanup_stale_interpretations() RETURNS integer LANGUAGE sql SET search_path = '' AS $$ SELECT 0 $$`],
  ['row security', 'table public.plans', 'ALTER TABLE public.plans DISABLE ROW LEVEL SECURITY'],
  ['grants', 'public.storage_usage: anon holds INSERT', 'GRANT INSERT ON public.storage_usage TO anon'],
] as const;

describe('a database broken once in each way', () => {
  let db: Throwaway;
  let c: pg.Client;
  beforeAll(async () => {
    db = await throwawayCluster();
    await migrateUp(db.url);
    c = await client(db.url);
  }, 120_000);
  afterAll(async () => {
    await c?.end();
    await db?.destroy();
  });

  it('is reported completely by doctor, put back by migrate up, and clean afterwards', async () => {
    for (const [, , statement] of BREAKAGE) await c.query(statement);
    // runs of pg_cron during the upgrade are not what this test looks at
    await c.query('DELETE FROM cron.job_run_details');
    const before = await doctor(db.url);
    expect(before.code).toBe(1);
    const found = before.report.checks.filter((k) => k.status === 'problem').map((k) => `${k.check}: ${k.detail}`);
    for (const [kind, object] of BREAKAGE) {
      expect(found.some((f) => f.startsWith(`${kind}: `) && f.includes(object)), `${kind} ${object} in:\n${found.join('\n')}`).toBe(true);
    }
    expect(found).toHaveLength(BREAKAGE.length);

    const up = await runCli(['migrate', 'up'], { DATABASE_URL: db.url });
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toMatch(new RegExp(`Put back ${BREAKAGE.length} object\\(s\\) that had drifted from the record\\.`));
    for (const [, object] of BREAKAGE) expect(up.stdout).toContain(object.replace(/: anon holds INSERT$/, ''));

    const after = await doctor(db.url);
    expect(after.report.checks.filter((k) => k.status !== 'ok')).toEqual([]);
    expect(after.code).toBe(0);
    // and it really works again: the quota trigger refuses, the index serves the claim
    const { rows } = await c.query<{ tgenabled: string }>(`SELECT tgenabled FROM pg_trigger WHERE tgname = 'quota_sources_insert'`);
    expect(rows[0]!.tgenabled).toBe('O');
    await expect(c.query(`INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
                          VALUES (gen_random_uuid(), repeat('a', 64), 'text/plain', 'k', -1)`)).rejects.toMatchObject({ code: '23514' });
  }, 120_000);
});

describe('an object the project did not create', () => {
  let db: Throwaway;
  beforeAll(async () => {
    db = await throwawayCluster();
    await loadV020(db.url, { data: false });
    const c = await client(db.url);
    await c.query(`CREATE FUNCTION public.format_bytes(bigint) RETURNS text LANGUAGE sql AS $$ SELECT 'the application''s own' $$`);
    await c.end();
  }, 120_000);
  afterAll(() => db?.destroy());

  it('is a collision doctor names before the upgrade, and migrate up refuses before changing anything', async () => {
    const { code, report } = await doctor(db.url);
    expect(code).toBe(1);
    expect(report.checks.find((k) => k.check === 'collisions')).toMatchObject({
      status: 'problem',
      detail: "public.format_bytes(bigint) exists and is not neotoma-ops's: sql/functions/quotas/format_bytes.sql would replace it",
    });
    const up = await runCli(['migrate', 'up'], { DATABASE_URL: db.url });
    expect(up.code).toBe(2);
    expect(up.stderr).toMatch(/Nothing was changed: public\.format_bytes\(bigint\) exists and is not neotoma-ops's/);
    const c = await client(db.url);
    try {
      expect((await c.query(`SELECT public.format_bytes(1) AS v`)).rows[0]).toEqual({ v: "the application's own" });
      expect((await c.query(`SELECT to_regclass('neotoma_ops.pgmigrations') AS t`)).rows[0]).toEqual({ t: null });
    } finally {
      await c.end();
    }
  }, 60_000);
});

describe('migrate down', () => {
  let db: Throwaway;
  let c: pg.Client;
  let created: boolean;
  beforeAll(async () => {
    db = await throwawayCluster();
    await migrateUp(db.url);
    c = await client(db.url);
    // on a fresh install the base tables are the project's creation; on a v0.2.0 database (Supabase mode) Neotoma's
    created = (await c.query(`SELECT 1 FROM neotoma_ops.bootstrap_objects WHERE object_kind = 'table' AND object_name = 'public.sources'`)).rowCount === 1;
  }, 120_000);
  afterAll(async () => {
    await c?.end();
    await db?.destroy();
  });

  it('refuses to discard queued bytes not stored yet, or application rows in tables it created, naming them; --dry-run lists it all', async () => {
    await enqueueJobs(c, 2);
    const all = String((await migrationStatus(db.url)).applied.length);
    const dry = await runCli(['migrate', 'down', '--count', all, '--dry-run'], { DATABASE_URL: db.url });
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/would revert 0005_upload-queue: drop \d+ object\(s\) \(.*function public\.claim_upload_jobs/);
    expect(dry.stdout).toMatch(/would destroy 0005_upload-queue: 2 queued uploads whose bytes are not stored yet/);
    if (created) expect(dry.stdout).toMatch(/would destroy 0003_base-schema: 2 rows of public\.sources, the application's table this migration created/);
    expect(dry.stdout).toMatch(/Dry run: nothing was changed\./);

    const refused = await runCli(['migrate', 'down', '--count', all], { DATABASE_URL: db.url });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/Nothing was reverted: it would destroy data neotoma-ops did not write: .*0005_upload-queue: 2 queued uploads whose bytes are not stored yet/);
    expect(refused.stderr).toMatch(/--drop-data/);
    expect((await migrationStatus(db.url)).pending).toEqual([]);
  }, 60_000);

  it('reverts each migration whole: a down section that fails leaves that migration and its SQL files in place', async () => {
    await c.query('DELETE FROM public.upload_queue');
    await c.query('DELETE FROM public.sources');
    // an application view on the queue: 0005's down cannot drop the table under it
    await c.query('CREATE VIEW public.app_queue_view AS SELECT id FROM public.upload_queue');
    const applied = (await migrationStatus(db.url)).applied;
    const err = await migrateDown(db.url, { count: applied.length - applied.indexOf('0005_upload-queue') }).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/0005_upload-queue\.sql(:\d+)?: cannot drop table (public\.)?upload_queue because other objects depend on it/);
    const status = await migrationStatus(db.url);
    expect(status.applied.at(-1)).toBe('0005_upload-queue');
    const { rows } = await c.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_trigger WHERE tgname LIKE 'upload_queue_payloads_count_%' AND NOT tgisinternal`);
    expect(rows[0]!.n).toBe(4);
    expect((await c.query(`SELECT to_regprocedure('public.claim_upload_jobs(text,integer,interval)') IS NOT NULL AS ok`)).rows[0]).toEqual({ ok: true });
    await c.query('DROP VIEW public.app_queue_view');
    const doctorAfter = await doctor(db.url);
    expect(doctorAfter.report.checks.filter((k) => ['missing', 'altered', 'disabled'].includes(k.check))).toEqual([]);
  }, 120_000);

  it('with the data gone (or --drop-data) the full down runs and leaves no record behind', async () => {
    await c.query(`INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size) VALUES (gen_random_uuid(), repeat('b', 64), 'text/plain', 'k', 1)`);
    const all = (await migrationStatus(db.url)).applied.length;
    const r = await migrateDown(db.url, { count: all, dropData: created }).catch((e: unknown) => e);
    expect(r).not.toBeInstanceOf(Error);
    expect((await c.query(`SELECT to_regclass('neotoma_ops.owned_objects') AS t`)).rows[0]).toEqual({ t: null });
    await migrateUp(db.url);
  }, 120_000);
});

describe('a long deferred step', () => {
  let db: Throwaway;
  let dir: string;
  beforeAll(async () => {
    db = await throwawayCluster();
    dir = await mkdtemp(path.join(os.tmpdir(), 'neotoma-slow-'));
    await cp(migrationsDir, dir, { recursive: true });
    // eight batches of about a second each, with a total: progress at least every 5 s, resumable by its cursor
    await writeFile(path.join(dir, '0099_slow-step.sql'), `-- Up Migration
INSERT INTO neotoma_ops.deferred_steps (migration, position, description, statement, repeat, total_statement) VALUES
  ('0099_slow-step', 1, 'walk eight slow batches',
   $$SELECT CASE WHEN coalesce($1::int, 0) < 8 THEN (coalesce($1::int, 0) + 1)::text END FROM pg_sleep(1)$$, true, 'SELECT 8');
-- Down Migration
DELETE FROM neotoma_ops.deferred_steps WHERE migration = '0099_slow-step';
`);
  }, 120_000);
  afterAll(async () => {
    await db?.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it('says how far it is every 5 s, shows it in migrate status from elsewhere, and resumes where it was interrupted', async () => {
    const lines: string[] = [];
    const first = migrateUp(db.url, { migrationsDir: dir, log: (l) => lines.push(l) }).then(() => 'finished', (e: unknown) => e as Error);
    const line = await waitFor('a progress line', async () =>
      lines.find((l) => /^deferred step "walk eight slow batches": \d of 8 batches \(\d+ %\), [\d,]+\/s, about [^)]+ left/.test(l)), 60_000, 100);
    expect(line).toBeDefined();
    const status = await migrationStatus(db.url, { migrationsDir: dir });
    const step = status.pendingSteps.find((d) => d.migration === '0099_slow-step');
    expect(step?.progress).toMatch(/^\d of 8 batches \(\d+ %\)/);
    // the run is interrupted: its connection is cut (a restart, a network cut)
    const c = await client(db.url);
    await c.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'neotoma-ops migrate' AND pid <> pg_backend_pid()`);
    expect(await first).toBeInstanceOf(Error);
    // the lease of a run that went away passes after it expires: hand it over at once for the test
    await c.query('DELETE FROM neotoma_ops.migrate_lock');
    const { rows } = await c.query<{ cursor: string }>(`SELECT cursor FROM neotoma_ops.deferred_steps WHERE migration = '0099_slow-step'`);
    await c.end();
    expect(Number(rows[0]!.cursor)).toBeGreaterThanOrEqual(4);
    const again: string[] = [];
    const second = await migrateUp(db.url, { migrationsDir: dir, log: (l) => again.push(l) });
    expect(again).toContain(`running deferred step: walk eight slow batches (resuming after ${rows[0]!.cursor}, where an earlier run stopped)`);
    expect(second.deferredSteps).toEqual(['walk eight slow batches']);
  }, 120_000);
});
