import { cp, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateDown, migrateUp, migrationStatus, MigrationFileError } from '../../src/migrate.js';
import { OperationalError } from '../../src/errors.js';
import { migrationsDir, projectRoot, sqlFunctionsDir, sqlTriggersDir, sqlViewsDir } from '../../src/paths.js';
import { client, runCli, testMode, throwawayCluster, type Throwaway } from './helpers/db.js';

const allMigrations = (await readdir(migrationsDir)).filter((f) => f.endsWith('.sql')).map((f) => f.replace(/\.sql$/, '')).sort();

async function scalar<T>(url: string, sql: string): Promise<T> {
  const c = await client(url);
  try {
    const { rows } = await c.query(sql);
    return Object.values(rows[0] as Record<string, unknown>)[0] as T;
  } finally {
    await c.end();
  }
}

describe('migrate on a fresh database', () => {
  let db: Throwaway;
  beforeAll(async () => {
    db = await throwawayCluster();
  });
  afterAll(async () => {
    await db.destroy();
  });

  it('applies every migration and SQL file, then a second run is a no-op', async () => {
    const first = await migrateUp(db.url);
    expect(first.migrations).toEqual(allMigrations);
    const status = await migrationStatus(db.url);
    expect(status.pending).toEqual([]);
    expect(status.applied).toEqual(allMigrations);
    expect(status.sqlFiles.every((f) => f.state === 'applied')).toBe(true);
    expect(first.sqlFiles).toEqual(status.sqlFiles.map((f) => f.file));

    const second = await migrateUp(db.url);
    expect(second).toEqual({ migrations: [], sqlFiles: [], deferredSteps: [], repaired: [], warnings: [] });
    expect(await scalar<boolean>(db.url, `SELECT to_regclass('public.sources') IS NOT NULL`)).toBe(true);
  });

  it('reverts all migrations with down, and up restores them with their SQL files', async () => {
    const down = await migrateDown(db.url, { count: allMigrations.length });
    expect(down.migrations).toEqual([...allMigrations].reverse());
    expect(await scalar<boolean>(db.url, `SELECT to_regclass('public.sources') IS NULL`)).toBe(true);
    expect((await migrationStatus(db.url)).pending).toEqual(allMigrations);

    const up = await migrateUp(db.url);
    expect(up.migrations).toEqual(allMigrations);
    expect((await migrationStatus(db.url)).sqlFiles.every((f) => f.state === 'applied')).toBe(true);
    expect(await scalar<number>(db.url, `SELECT count(*)::int FROM pg_policies WHERE tablename = 'sources'`)).toBe(2);
  });
});

describe('two concurrent migrate up runs', () => {
  let db: Throwaway;
  beforeAll(async () => {
    db = await throwawayCluster();
  });
  afterAll(async () => {
    await db.destroy();
  });

  it('serialize: both succeed and each migration is applied once', async () => {
    const [a, b] = await Promise.all([
      runCli(['migrate', 'up'], { DATABASE_URL: db.url }),
      runCli(['migrate', 'up'], { DATABASE_URL: db.url }),
    ]);
    expect(a.stderr + b.stderr).toBe('');
    expect([a.code, b.code]).toEqual([0, 0]);
    // exactly one of them did the work; the other waited and found nothing to do
    expect([a.stdout, b.stdout].filter((o) => o.includes('Nothing to apply')).length).toBe(1);
    const c = await client(db.url);
    try {
      const { rows } = await c.query<{ name: string; n: number }>(
        'SELECT name, count(*)::int AS n FROM neotoma_ops.pgmigrations GROUP BY name ORDER BY name',
      );
      expect(rows).toEqual(allMigrations.map((name) => ({ name, n: 1 })));
    } finally {
      await c.end();
    }
  });
});

describe('repeatable SQL files and failures', () => {
  let db: Throwaway;
  let tmp: string;
  beforeAll(async () => {
    db = await throwawayCluster();
    tmp = await mkdtemp(path.join(os.tmpdir(), 'neotoma-sqlfiles-'));
  });
  afterAll(async () => {
    await db.destroy();
    await rm(tmp, { recursive: true, force: true });
  });

  it('re-applies only the file whose content changed', async () => {
    const fns = path.join(tmp, 'functions');
    await cp(migrationsDir, path.join(tmp, 'migrations'), { recursive: true });
    await rm(fns, { recursive: true, force: true });
    await mkdir(fns);
    await writeFile(path.join(fns, 't_one.sql'), '-- requires: 0001_platform-shim\nCREATE OR REPLACE FUNCTION public.t_one() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n');
    await writeFile(path.join(fns, 't_two.sql'), '-- requires: 0001_platform-shim\nCREATE OR REPLACE FUNCTION public.t_two() RETURNS int LANGUAGE sql AS $$ SELECT 2 $$;\n');
    // the project's own files too: the migrations' deferred steps call their functions
    const opts = { migrationsDir: path.join(tmp, 'migrations'), repeatableDirs: [sqlFunctionsDir, sqlViewsDir, sqlTriggersDir, fns] };
    const mine = (files: string[]): string[] => files.filter((f) => f.startsWith(path.relative(projectRoot, fns))).map((f) => path.basename(f));
    const ours = (files: { file: string; state: string }[]) => files.filter((f) => mine([f.file]).length > 0);

    const first = await migrateUp(db.url, opts);
    expect(mine(first.sqlFiles)).toEqual(['t_one.sql', 't_two.sql']);

    await writeFile(path.join(fns, 't_two.sql'), '-- requires: 0001_platform-shim\nCREATE OR REPLACE FUNCTION public.t_two() RETURNS int LANGUAGE sql AS $$ SELECT 22 $$;\n');
    const status = await migrationStatus(db.url, opts);
    expect(ours(status.sqlFiles).map((f) => [path.basename(f.file), f.state])).toEqual([
      ['t_one.sql', 'applied'],
      ['t_two.sql', 'changed'],
    ]);
    const second = await migrateUp(db.url, opts);
    expect(second.migrations).toEqual([]);
    expect(second.sqlFiles.map((f) => path.basename(f))).toEqual(['t_two.sql']);
    expect(second.deferredSteps).toEqual([]);
    expect(await scalar<number>(db.url, 'SELECT public.t_two()')).toBe(22);
  });

  it('rolls back a failing SQL file and names the file and line', async () => {
    const fns = path.join(tmp, 'broken');
    await mkdir(fns);
    await writeFile(
      path.join(fns, 'c_broken.sql'),
      ['-- requires: 0001_platform-shim', '-- creates a table, then fails', 'CREATE TABLE public.t_partial (id int);', 'SELECT no_such_column FROM public.t_partial;', ''].join('\n'),
    );
    const err = await migrateUp(db.url, { migrationsDir: path.join(tmp, 'migrations'), repeatableDirs: [fns] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MigrationFileError);
    const e = err as MigrationFileError;
    expect(path.basename(e.file)).toBe('c_broken.sql');
    expect(e.line).toBe(4);
    expect(e.message).toMatch(/c_broken\.sql:4: column "no_such_column" does not exist/);
    expect(await scalar<boolean>(db.url, `SELECT to_regclass('public.t_partial') IS NULL`)).toBe(true);
  });

  it('rolls back a failing migration and names the file and line', async () => {
    const migs = path.join(tmp, 'migrations');
    await writeFile(
      path.join(migs, '9999_broken.sql'),
      ['-- Up Migration', 'CREATE TABLE public.t_mig (id int);', 'INSERT INTO public.t_mig (no_such_column) VALUES (1);', '', '-- Down Migration', 'DROP TABLE public.t_mig;', ''].join('\n'),
    );
    const err = await migrateUp(db.url, { migrationsDir: migs, repeatableDirs: [] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MigrationFileError);
    const e = err as MigrationFileError;
    expect(path.basename(e.file)).toBe('9999_broken.sql');
    expect(e.line).toBe(3);
    expect(e.message).toMatch(/9999_broken\.sql:3: column "no_such_column" of relation "t_mig" does not exist/);
    expect(await scalar<boolean>(db.url, `SELECT to_regclass('public.t_mig') IS NULL`)).toBe(true);
    expect(await scalar<number>(db.url, `SELECT count(*)::int FROM neotoma_ops.pgmigrations WHERE name = '9999_broken'`)).toBe(0);
  });

  it('refuses a new migration that sorts before an applied one, saying how to fix it', async () => {
    const migs = path.join(tmp, 'migrations');
    await rm(path.join(migs, '9999_broken.sql'), { force: true });
    await writeFile(path.join(migs, '0002_late.sql'), '-- Up Migration\nSELECT 1;\n-- Down Migration\nSELECT 1;\n');
    const err = await migrateUp(db.url, { migrationsDir: migs, repeatableDirs: [] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OperationalError);
    expect((err as Error).message).toMatch(
      /^Migration 0002_late is not applied but sorts before 0002_pg-cron, which is: migrations apply in name order only/,
    );
    expect(await scalar<number>(db.url, `SELECT count(*)::int FROM neotoma_ops.pgmigrations WHERE name = '0002_late'`)).toBe(0);
  });
});

describe('the migration history', () => {
  it('is numbered in sequence, 0001 to N, one file per capability, so that a new migration sorts after every applied one', () => {
    const numbers = allMigrations.map((m) => {
      const match = /^(\d{4})_[a-z0-9]+(-[a-z0-9]+)*$/.exec(m);
      expect(match, `${m}: name it NNNN_capability-name.sql`).not.toBeNull();
      return Number(match![1]);
    });
    expect(numbers).toEqual(allMigrations.map((_, i) => i + 1));
  });

  it('every folder of SQL files is named after a migration, which is where what it needs is created', async () => {
    const areas = new Set<string>();
    for (const root of [sqlFunctionsDir, sqlViewsDir, sqlTriggersDir]) {
      for (const area of await readdir(root)) areas.add(area);
    }
    const capabilities = allMigrations.map((m) => m.replace(/^\d+_/, ''));
    for (const area of areas) expect(capabilities, `sql/*/${area}/`).toContain(area);
  });
});

/** Everything in the catalog a project could create: per kind, the sorted names. */
async function catalog(url: string): Promise<Record<string, string[]>> {
  const c = await client(url);
  const userSchemas = `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_toast%'`;
  const names = async (sql: string): Promise<string[]> => (await c.query<{ name: string }>(sql)).rows.map((r) => r.name).sort();
  try {
    const cron = (await c.query<{ ok: boolean }>(`SELECT to_regclass('cron.job') IS NOT NULL AS ok`)).rows[0]?.ok;
    return {
      schemas: await names(`SELECT nspname AS name FROM pg_namespace`),
      functions: await names(`SELECT n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')' AS name
                                FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE ${userSchemas}`),
      relations: await names(`SELECT n.nspname || '.' || c.relname || ' ' || c.relkind::text AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ${userSchemas}`),
      types: await names(`SELECT n.nspname || '.' || t.typname AS name FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE ${userSchemas}`),
      columns: await names(`SELECT a.attrelid::regclass::text || '.' || a.attname AS name FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                              JOIN pg_namespace n ON n.oid = c.relnamespace WHERE ${userSchemas} AND a.attnum > 0 AND NOT a.attisdropped`),
      constraints: await names(`SELECT conrelid::regclass::text || ' ' || conname AS name FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE ${userSchemas}`),
      triggers: await names(`SELECT tgrelid::regclass::text || ' ' || tgname AS name FROM pg_trigger WHERE NOT tgisinternal`),
      policies: await names(`SELECT polrelid::regclass::text || ' ' || polname AS name FROM pg_policy`),
      privileges: await names(`SELECT c.oid::regclass::text || ' ' || coalesce(c.relacl::text, '') AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                 WHERE ${userSchemas} AND c.relkind IN ('r', 'v', 'S')`),
      roles: await names(`SELECT rolname AS name FROM pg_roles`),
      extensions: await names(`SELECT extname AS name FROM pg_extension`),
      cronJobs: cron ? await names(`SELECT jobname AS name FROM cron.job`) : [],
    };
  } finally {
    await c.end();
  }
}

/** up, a full down (the catalog as before), up again (the catalog as after the first up, ACL order included). */
async function fullDownRoundTrip(url: string): Promise<void> {
  const before = await catalog(url);
  const first = await migrateUp(url);
  const installed = await catalog(url);
  expect(installed.functions).toContain('public.ops_metrics()');
  expect(installed.cronJobs).toContain('upload-queue-processor');
  expect(await migrateDown(url, { count: allMigrations.length })).toMatchObject({ migrations: [...allMigrations].reverse() });
  expect(await catalog(url)).toEqual(before);
  const again = await migrateUp(url);
  expect(again.migrations).toEqual(first.migrations);
  expect(again.sqlFiles).toEqual(first.sqlFiles);
  expect(await catalog(url)).toEqual(installed);
}

// The plain shape grants on the tables it creates itself (no default privileges there), so the order of those
// grants shows in the ACLs; the Supabase mode checks it too, on the same server, since it may be the only mode
// a major runs in (scripts/test.sh).
describe.runIf(testMode === 'supabase')('a full migrate down on a plain cluster of the same server', () => {
  let db: Throwaway;
  beforeAll(async () => {
    db = await throwawayCluster({ supabase: false });
  });
  afterAll(async () => {
    await db.destroy();
  });

  it('leaves no object the project created (catalog before = catalog after), and up works again', async () => {
    await fullDownRoundTrip(db.url);
  });
});

describe('a full migrate down', () => {
  let db: Throwaway;
  beforeAll(async () => {
    db = await throwawayCluster();
  });
  afterAll(async () => {
    await db.destroy();
  });

  it('leaves no object the project created (catalog before = catalog after), and up works again', async () => {
    await fullDownRoundTrip(db.url);
  });

  it('down by one migration drops exactly what that migration and its SQL files created', async () => {
    const c = await client(db.url);
    const files = async (): Promise<Map<string, string[]>> => {
      const { rows } = await c.query<{ file: string; identity: string }>(
        `SELECT source AS file, identity FROM neotoma_ops.owned_objects WHERE source LIKE 'sql/%' AND kind IN ('function', 'view', 'trigger')`);
      const m = new Map<string, string[]>();
      for (const r of rows) m.set(r.file, [...(m.get(r.file) ?? []), r.identity]);
      return m;
    };
    try {
      const all = await catalog(db.url);
      const fns = (k: Record<string, string[]>): string[] => k.functions ?? [];
      const owned = await files();
      const edge = [...owned.entries()].filter(([f]) => f.includes('/upload-queue-edge-function/')).flatMap(([, ids]) => ids).sort();
      expect(edge).toEqual([
        'neotoma_ops.upload_queue_edge_function_secrets()',
        'public.invoke_upload_queue_processor()',
        'public.schedule_upload_queue_edge_function(text, text)',
        'public.unschedule_upload_queue_edge_function()',
      ]);
      const named = (fs: string[]): string[] => fs.map((f) => f.replace(/\(.*$/, '')).sort();
      // 0010 has no SQL file: reverting it changes no function or trigger
      await migrateDown(db.url, { count: 1 });
      const after0010 = await catalog(db.url);
      expect(after0010.functions).toEqual(all.functions);
      expect(after0010.triggers).toEqual(all.triggers);
      // 0009 (a settings table) and 0008: the Edge Function's files go with 0008
      await migrateDown(db.url, { count: 2 });
      const after = await catalog(db.url);
      expect(named(fns(all).filter((f) => !fns(after).includes(f)))).toEqual(named(edge));
      expect(after.triggers).toEqual(all.triggers);
      const status = await migrationStatus(db.url);
      expect(status.sqlFiles.filter((f) => f.state === 'pending').map((f) => f.file).sort()).toEqual([
        'sql/functions/upload-queue-edge-function/internal/upload_queue_edge_function_secrets.sql',
        'sql/functions/upload-queue-edge-function/invoke_upload_queue_processor.sql',
        'sql/functions/upload-queue-edge-function/schedule_upload_queue_edge_function.sql',
        'sql/functions/upload-queue-edge-function/unschedule_upload_queue_edge_function.sql',
      ]);
      // two more: operations, then interpretation timeouts (its trigger on interpretation_runs with it)
      await migrateDown(db.url, { count: 2 });
      const left = await catalog(db.url);
      expect(left.functions).not.toContain('public.ops_metrics()');
      expect(left.functions).not.toContain('public.cleanup_stale_interpretations()');
      expect(left.triggers).not.toContain('interpretation_runs interpretation_runs_stamp_timeout');
      expect(left.functions).toContain('public.set_user_plan(p_user_id uuid, p_plan_id text)');
      expect(left.triggers).toContain('sources quota_sources_insert');
      expect([...(await files()).keys()].every((f) => /\/(base-schema|quotas|upload-queue)\//.test(f))).toBe(true);
      await migrateUp(db.url);
      expect(await catalog(db.url)).toEqual(all);
    } finally {
      await c.end();
    }
  });

  it('each SQL file creates exactly what it is named after', async () => {
    const c = await client(db.url);
    try {
      const { rows } = await c.query<{ file: string; object_type: string; identity: string }>(
        `SELECT source AS file, kind AS object_type, identity FROM neotoma_ops.owned_objects
        WHERE source LIKE 'sql/%' AND definition IS NOT NULL ORDER BY source, kind, identity`,
      );
      const byFile = new Map<string, { object_type: string; identity: string }[]>();
      for (const r of rows) byFile.set(r.file, [...(byFile.get(r.file) ?? []), r]);
      expect(byFile.size).toBe((await migrationStatus(db.url)).sqlFiles.length);
      for (const [file, objects] of byFile) {
        const name = path.basename(file, '.sql');
        const kind = file.split('/')[1];
        const named = (o: { identity: string }): string => o.identity.replace(/^[a-z_]+\./, '').replace(/[ (].*$/, '');
        if (kind === 'functions') {
          expect(objects.map((o) => [o.object_type, named(o)]), file).toEqual([['function', name]]);
        } else if (kind === 'views') {
          expect(objects.map((o) => [o.object_type, named(o)]), file).toEqual([['view', name]]);
        } else {
          // a trigger and the function it runs
          expect(objects.filter((o) => o.object_type === 'trigger').map((o) => o.identity.split(' ')[0]), file).toEqual([name]);
          expect(objects.filter((o) => o.object_type === 'function').map(named), file).toEqual([expect.stringMatching(new RegExp(`^${name}(_trg)?$`))]);
        }
      }
    } finally {
      await c.end();
    }
  });
});

describe('the next change (the v0.3.1 example of CONTRIBUTING.md)', () => {
  // a new migration adds a column; a new function in an existing capability folder needs it and says so
  let dir: string;
  let migs: string;
  let extra: string;
  let fresh: Throwaway;
  let upgraded: Throwaway;
  const opts = (): { migrationsDir: string; repeatableDirs: string[] } =>
    ({ migrationsDir: migs, repeatableDirs: [sqlFunctionsDir, sqlViewsDir, sqlTriggersDir, extra] });
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'neotoma-next-'));
    migs = path.join(dir, 'migrations');
    extra = path.join(dir, 'functions');
    await cp(migrationsDir, migs, { recursive: true });
    const next = `${String(allMigrations.length + 1).padStart(4, '0')}_usage-notes`;
    await writeFile(path.join(migs, `${next}.sql`), [
      '-- Up Migration', '-- A note an operator keeps on a user\'s usage.',
      'ALTER TABLE public.storage_usage ADD COLUMN IF NOT EXISTS note text;',
      '-- Down Migration', 'ALTER TABLE public.storage_usage DROP COLUMN IF EXISTS note;', ''].join('\n'));
    await mkdir(path.join(extra, 'quotas'), { recursive: true });
    await writeFile(path.join(extra, 'quotas', 'usage_note.sql'), [
      `-- requires: ${next}`,
      '-- public.usage_note(p_user_id) → the note kept on the user\'s usage (NULL when none).',
      'CREATE OR REPLACE FUNCTION public.usage_note(p_user_id uuid) RETURNS text LANGUAGE sql STABLE',
      "SET search_path = '' AS $$ SELECT su.note FROM public.storage_usage AS su WHERE su.user_id = p_user_id $$;",
      'REVOKE ALL ON FUNCTION public.usage_note(uuid) FROM PUBLIC, anon, authenticated;', ''].join('\n'));
    [fresh, upgraded] = await Promise.all([throwawayCluster(), throwawayCluster()]);
  });
  afterAll(async () => {
    await Promise.all([fresh?.destroy(), upgraded?.destroy()]);
    await rm(dir, { recursive: true, force: true });
  });

  const note = (url: string): Promise<boolean> =>
    scalar<boolean>(url, `SELECT to_regprocedure('public.usage_note(uuid)') IS NOT NULL AND to_regclass('public.storage_usage') IS NOT NULL
                            AND EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'public.storage_usage'::regclass AND attname = 'note')`);

  it('a fresh install applies the migration, then the file that requires it', async () => {
    const r = await migrateUp(fresh.url, opts());
    expect(r.migrations.at(-1)).toMatch(/_usage-notes$/);
    expect(r.sqlFiles.at(-1)).toMatch(/functions\/quotas\/usage_note\.sql$/);
    expect(await note(fresh.url)).toBe(true);
  });

  it('an installed database (everything up to the last release) is upgraded with just those two', async () => {
    await migrateUp(upgraded.url);
    const r = await migrateUp(upgraded.url, opts());
    expect(r.migrations).toEqual([allMigrations.length + 1].map((n) => `${String(n).padStart(4, '0')}_usage-notes`));
    expect(r.sqlFiles.map((f) => path.basename(f))).toEqual(['usage_note.sql']);
    expect(await note(upgraded.url)).toBe(true);
  });

  it('down reverts the migration and drops the function that required it, nothing else; up brings both back', async () => {
    const d = await migrateDown(upgraded.url, { ...opts(), count: 1 });
    expect(d.migrations).toEqual([`${String(allMigrations.length + 1).padStart(4, '0')}_usage-notes`]);
    expect(await scalar<boolean>(upgraded.url, `SELECT to_regprocedure('public.usage_note(uuid)') IS NULL`)).toBe(true);
    expect(await scalar<boolean>(upgraded.url, `SELECT NOT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'public.storage_usage'::regclass AND attname = 'note')`)).toBe(true);
    const s = await migrationStatus(upgraded.url, opts());
    expect(s.sqlFiles.filter((f) => f.state !== 'applied').map((f) => path.basename(f.file))).toEqual(['usage_note.sql']);
    expect(await scalar<number>(upgraded.url, `SELECT count(*)::int FROM neotoma_ops.doctor(false) WHERE kind IN ('missing', 'altered')`)).toBe(0);
    await migrateUp(upgraded.url, opts());
    expect(await note(upgraded.url)).toBe(true);
  });
});
