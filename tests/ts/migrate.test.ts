import { cp, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrateDown, migrateUp, migrationStatus, MigrationFileError } from '../../src/migrate.js';
import { OperationalError } from '../../src/errors.js';
import { migrationsDir, projectRoot, sqlFunctionsDir, sqlTriggersDir } from '../../src/paths.js';
import { client, runCli, throwawayCluster, type Throwaway } from './helpers/db.js';

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
    const opts = { migrationsDir: path.join(tmp, 'migrations'), repeatableDirs: [sqlFunctionsDir, sqlTriggersDir, fns] };
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
    await writeFile(path.join(migs, '00025_late.sql'), '-- Up Migration\nSELECT 1;\n-- Down Migration\nSELECT 1;\n');
    const err = await migrateUp(db.url, { migrationsDir: migs, repeatableDirs: [] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OperationalError);
    expect((err as Error).message).toMatch(
      /^Migration 00025_late is not applied but sorts before 0100_quota-tables, which is: migrations apply in name order only/,
    );
    expect(await scalar<number>(db.url, `SELECT count(*)::int FROM neotoma_ops.pgmigrations WHERE name = '00025_late'`)).toBe(0);
  });
});
