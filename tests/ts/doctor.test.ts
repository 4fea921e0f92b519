// `neotoma-ops doctor` before and after the upgrade of a Neotoma v0.2.0 database, and the upgrade of one whose
// existing rows break the integrity checks v0.3.0 adds: it completes, reports each broken check in one
// paragraph, and the checks guard new rows at once; once the rows are fixed the next `migrate up` validates them.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Ajv } from 'ajv';
import formats from 'ajv-formats';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { plannedChecks, type DoctorReport } from '../../src/commands/doctor.js';
import { projectRoot } from '../../src/paths.js';
import { client, runCli, serverMajor, testMode, throwawayCluster, type Throwaway } from './helpers/db.js';
import { loadV020 } from './helpers/v020-fixture.js';

const BAD_USER = 'c0000000-0000-4000-8000-000000000001';
const major = await serverMajor();

async function doctor(url: string): Promise<{ code: number; report: DoctorReport }> {
  const r = await runCli(['doctor', '--json'], { DATABASE_URL: url });
  return { code: r.code, report: JSON.parse(r.stdout) as DoctorReport };
}

const byCheck = (r: DoctorReport, name: string) => r.checks.find((k) => k.check === name)!;

describe('doctor, and an upgrade over rows that break the new checks', () => {
  let db: Throwaway;
  let c: pg.Client;

  beforeAll(async () => {
    db = await throwawayCluster();
    await loadV020(db.url, { users: 20 });
    c = await client(db.url);
    // what Neotoma v0.2.0 accepted: a malformed hash, and a negative size that would cut the counter by 1 GiB
    await c.query(
      `INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size) VALUES
         ($1, 'ABC', 'text/plain', 'k', 10), ($1, repeat('e', 64), 'text/plain', 'k', -1073741824)`,
      [BAD_USER],
    );
  }, 120_000);

  afterAll(async () => {
    await c?.end();
    await db?.destroy();
  });

  it('before the upgrade: says what is pending and which rows break the checks, each with its fix (exit 1)', async () => {
    const { code, report } = await doctor(db.url);
    const ajv = new Ajv({ allErrors: true, strict: true });
    (formats as unknown as { default: (a: Ajv) => void }).default(ajv);
    const validate = ajv.compile(JSON.parse(await readFile(path.join(projectRoot, 'docs', 'schemas', 'doctor.schema.json'), 'utf8')) as object);
    expect(validate(report), JSON.stringify(validate.errors)).toBe(true);
    expect(code).toBe(1);
    expect(report.ok).toBe(false);
    expect(byCheck(report, 'server').status).toBe('ok');
    expect(byCheck(report, 'role').status).toBe('ok');
    expect(byCheck(report, 'tables').status).toBe('ok');
    expect(byCheck(report, 'migrations')).toMatchObject({ status: 'warn', fix: 'neotoma-ops migrate up' });
    expect(byCheck(report, 'integrity')).toMatchObject({ status: 'problem' });
    expect(byCheck(report, 'integrity').detail).toMatch(/1 row\(s\) break sources_content_hash_sha256_lowercase_hex/);
    expect(byCheck(report, 'integrity').detail).toMatch(/1 row\(s\) break sources_file_size_not_negative/);
    expect(byCheck(report, 'integrity').fix).toMatch(/correct or delete them, then run neotoma-ops migrate up/);
    expect(byCheck(report, 'collisions').status).toBe('ok');
    // Supabase's default privileges gave the API roles everything on Neotoma's tables: the upgrade narrows them
    expect(byCheck(report, 'privileges').status).toBe(testMode === 'supabase' ? 'warn' : 'ok');
  });

  it('migrate up completes with one paragraph per broken check, and the checks refuse new bad rows at once', async () => {
    const r = await runCli(['migrate', 'up'], { DATABASE_URL: db.url });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/warning: 1 existing row\(s\) of public\.sources break the check sources_file_size_not_negative/);
    expect(r.stderr).toMatch(/warning: 1 existing row\(s\) of public\.sources break the check sources_content_hash_sha256_lowercase_hex/);
    expect(r.stderr).toMatch(/List them with: SELECT \* FROM public\.sources WHERE NOT \(file_size >= 0\)/);
    const err = await c
      .query(`INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size) VALUES ($1, repeat('f', 64), 'text/plain', 'k', -1073741824)`, [BAD_USER])
      .catch((e: unknown) => e as { code?: string; constraint?: string });
    expect(err).toMatchObject({ code: '23514', constraint: 'sources_file_size_not_negative' });
    const checks = await c.query<{ conname: string; convalidated: boolean }>(
      `SELECT conname, convalidated FROM pg_constraint WHERE conrelid = 'public.sources'::regclass AND contype = 'c' ORDER BY conname`,
    );
    expect(checks.rows).toEqual([
      { conname: 'sources_content_hash_sha256_lowercase_hex', convalidated: false },
      { conname: 'sources_file_size_not_negative', convalidated: false },
      { conname: 'sources_storage_status_check', convalidated: true },
    ]);
    // a negative size counts as 0 bytes: the counter is not cut by the old row
    const u = await c.query<{ total_bytes: string; total_sources: string }>(`SELECT total_bytes, total_sources FROM public.storage_usage WHERE user_id = $1`, [BAD_USER]);
    expect(u.rows[0]).toEqual({ total_bytes: '10', total_sources: '2' });
    const { code, report } = await doctor(db.url);
    expect(code).toBe(1);
    const breaking = report.checks.filter((k) => k.check === 'rows breaking checks');
    expect(breaking.map((k) => k.detail).sort()).toEqual([
      "1 rows of public.sources break CHECK ((content_hash ~ '^[0-9a-f]{64}$'::text))",
      '1 rows of public.sources break CHECK ((file_size >= 0))',
    ]);
    expect(breaking.every((k) => k.status === 'problem' && /correct or delete them, then run neotoma-ops migrate up/.test(k.fix ?? ''))).toBe(true);
    expect(byCheck(report, 'migrations')).toMatchObject({ status: 'warn', detail: '2 check(s) wait for the rows reported below' });
  });

  it('before the upgrade it counts with the checks the migrations add, read from their files (no list of its own)', async () => {
    const planned = await plannedChecks();
    const { rows } = await c.query<{ conname: string }>(
      `SELECT conname FROM pg_constraint WHERE conrelid = 'public.sources'::regclass AND contype = 'c' AND NOT convalidated ORDER BY conname`,
    );
    expect(planned.map((k) => k.constraint).sort()).toEqual(rows.map((r) => r.conname));
    expect(planned.every((k) => k.table === 'public.sources')).toBe(true);
  });

  it('after the rows are fixed, migrate up validates the checks and doctor finds nothing (exit 0)', async () => {
    await c.query(`DELETE FROM public.sources WHERE user_id = $1 AND (file_size < 0 OR content_hash !~ '^[0-9a-f]{64}$')`, [BAD_USER]);
    const r = await runCli(['migrate', 'up'], { DATABASE_URL: db.url });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/and 2 deferred step\(s\)/);
    expect(r.stderr).toBe('');
    const checks = await c.query<{ n: string }>(`SELECT count(*) AS n FROM pg_constraint WHERE conrelid = 'public.sources'::regclass AND contype = 'c' AND NOT convalidated`);
    expect(checks.rows[0]!.n).toBe('0');
    const { code, report } = await doctor(db.url);
    expect(report.checks.filter((k) => k.status !== 'ok')).toEqual([]);
    expect(code).toBe(0);
    const text = await runCli(['doctor'], { DATABASE_URL: db.url });
    expect(text.stdout).toMatch(/^record\s+ok\s+the \d+ objects neotoma-ops recorded are as it left them/m);
    expect(text.stdout).toMatch(/No problem found\.$/m);
  });

  it('names each problem of a broken database with its fix', async () => {
    await c.query(`UPDATE public.storage_usage SET total_bytes = total_bytes + 1 WHERE user_id = $1`, [BAD_USER]);
    await c.query(`GRANT INSERT ON public.storage_usage TO anon`);
    await c.query(`SELECT cron.unschedule('cron-history-purge')`);
    const { code, report } = await doctor(db.url);
    expect(code).toBe(1);
    expect(byCheck(report, 'counters')).toMatchObject({ status: 'problem' });
    expect(byCheck(report, 'counters').detail).toContain(BAD_USER);
    expect(byCheck(report, 'counters').fix).toMatch(/reconcile_storage_usage/);
    expect(byCheck(report, 'grants')).toMatchObject({ status: 'problem', detail: 'public.storage_usage: anon holds INSERT', fix: 'REVOKE INSERT ON public.storage_usage FROM anon;' });
    expect(byCheck(report, 'missing')).toMatchObject({ status: 'problem', detail: 'cron job cron-history-purge is missing (created by 0007_operations)' });
  });

  // PostgreSQL 17's MAINTAIN (LOCK TABLE, CLUSTER, REINDEX, VACUUM…), which GRANT ALL includes; 15 has no such privilege
  it.runIf(major >= 17)('reports a MAINTAIN held by a client role, with its REVOKE (PostgreSQL 17)', async () => {
    await c.query(`REVOKE INSERT ON public.storage_usage FROM anon`);
    await c.query(`GRANT MAINTAIN ON public.storage_usage, public.sources TO anon`);
    await c.query(`GRANT MAINTAIN ON public.upload_queue TO service_role`);
    const { code, report } = await doctor(db.url);
    expect(code).toBe(1);
    expect(byCheck(report, 'privileges')).toMatchObject({
      status: 'problem',
      detail: 'public.sources: anon holds MAINTAIN; public.storage_usage: anon holds MAINTAIN; public.upload_queue: service_role holds MAINTAIN',
      fix: 'REVOKE MAINTAIN ON public.sources FROM anon; REVOKE MAINTAIN ON public.storage_usage FROM anon; REVOKE MAINTAIN ON public.upload_queue FROM service_role;',
    });
    const text = await runCli(['doctor'], { DATABASE_URL: db.url });
    expect(text.stdout).toMatch(/^privileges\s+PROBLEM\s+public\.sources: anon holds MAINTAIN/m);
  });
});
