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
    expect(second).toEqual({ migrations: [], sqlFiles: [], deferredSteps: [], warnings: [] });
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
    await writeFile(path.join(fns, 'a_one.sql'), 'CREATE OR REPLACE FUNCTION public.t_one() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n');
    await writeFile(path.join(fns, 'b_two.sql'), 'CREATE OR REPLACE FUNCTION public.t_two() RETURNS int LANGUAGE sql AS $$ SELECT 2 $$;\n');
    // the project's own files too: the migrations' deferred steps call their functions
    const opts = { migrationsDir: path.join(tmp, 'migrations'), repeatableDirs: [sqlFunctionsDir, sqlViewsDir, sqlTriggersDir, fns] };
    const mine = (files: string[]): string[] => files.filter((f) => f.startsWith(path.relative(projectRoot, fns))).map((f) => path.basename(f));
    const ours = (files: { file: string; state: string }[]) => files.filter((f) => mine([f.file]).length > 0);

    const first = await migrateUp(db.url, opts);
    expect(mine(first.sqlFiles)).toEqual(['a_one.sql', 'b_two.sql']);

    await writeFile(path.join(fns, 'b_two.sql'), 'CREATE OR REPLACE FUNCTION public.t_two() RETURNS int LANGUAGE sql AS $$ SELECT 22 $$;\n');
    const status = await migrationStatus(db.url, opts);
    expect(ours(status.sqlFiles).map((f) => [path.basename(f.file), f.state])).toEqual([
      ['a_one.sql', 'applied'],
      ['b_two.sql', 'changed'],
    ]);
    const second = await migrateUp(db.url, opts);
    expect(second.migrations).toEqual([]);
    expect(second.sqlFiles.map((f) => path.basename(f))).toEqual(['b_two.sql']);
    expect(second.deferredSteps).toEqual([]);
    expect(await scalar<number>(db.url, 'SELECT public.t_two()')).toBe(22);
  });

  it('rolls back a failing SQL file and names the file and line', async () => {
    const fns = path.join(tmp, 'broken');
    await mkdir(fns);
    await writeFile(
      path.join(fns, 'c_broken.sql'),
      ['-- creates a table, then fails', 'CREATE TABLE public.t_partial (id int);', '', 'SELECT no_such_column FROM public.t_partial;', ''].join('\n'),
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
      const { rows } = await c.query<{ file: string; identity: string }>(`SELECT file, identity FROM neotoma_ops.sql_file_objects`);
      const m = new Map<string, string[]>();
      for (const r of rows) m.set(r.file, [...(m.get(r.file) ?? []), r.identity]);
      return m;
    };
    try {
      const all = await catalog(db.url);
      const fns = (k: Record<string, string[]>): string[] => k.functions ?? [];
      const owned = await files();
      const edge = [...owned.entries()].filter(([f]) => f.includes('/upload-queue-edge-function/')).flatMap(([, ids]) => ids);
      expect(edge).toEqual(['public.invoke_upload_queue_processor()']);
      await migrateDown(db.url, { count: 1 });
      const after = await catalog(db.url);
      expect(fns(all).filter((f) => !fns(after).includes(f))).toEqual(edge);
      expect(after.triggers).toEqual(all.triggers);
      const status = await migrationStatus(db.url);
      expect(status.sqlFiles.filter((f) => f.state === 'pending').map((f) => f.file)).toEqual([
        'sql/functions/upload-queue-edge-function/invoke_upload_queue_processor.sql',
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
        `SELECT file, object_type, identity FROM neotoma_ops.sql_file_objects ORDER BY file, object_type, identity`,
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
