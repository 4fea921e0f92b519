// The command line as a new user meets it: --help for the tool and every command (exit 0, nothing done),
// --version, usage errors in one line plus the usage (exit 2, no stack), and a demo that keeps off databases it
// did not create unless told, then removes what it wrote.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/paths.js';
import { client, runCli, throwawayCluster, type Throwaway } from './helpers/db.js';

// no database is reachable here: a command that tried to do its work would fail differently
const NOWHERE = { DATABASE_URL: 'postgres://nobody:x@127.0.0.1:1/none' };
const COMMANDS = ['start', 'migrate', 'migrate up', 'migrate down', 'migrate status', 'status', 'usage', 'requeue', 'plan',
  'doctor', 'demo', 'worker'];

describe('help and version', () => {
  it('--help of the tool lists every command and the environment', async () => {
    const r = await runCli(['--help'], NOWHERE);
    expect(r.code).toBe(0);
    for (const c of ['start', 'migrate', 'status', 'usage', 'requeue', 'plan', 'doctor', 'demo', 'worker']) {
      expect(r.stdout).toMatch(new RegExp(`^  ${c}\\b`, 'm'));
    }
    expect(r.stdout).toMatch(/DATABASE_URL/);
  });

  it.each(COMMANDS)('%s --help prints its usage and exits 0 without touching anything', async (command) => {
    const r = await runCli([...command.split(' '), '--help'], NOWHERE);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^Usage: neotoma-ops ${command}\\b`, 'm'));
    expect(r.stderr).toBe('');
  });

  it('--version prints the package version', async () => {
    const pkg = JSON.parse(await readFile(path.join(projectRoot, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = await runCli([flag], NOWHERE);
      expect(r.code).toBe(0);
      expect(r.stdout.trim()).toBe(pkg.version);
    }
  });
});

describe('usage errors', () => {
  it.each([
    [['status', '--jsn'], /unknown option '--jsn'/, 'neotoma-ops status'],
    [['worker', '--bogus'], /unknown option '--bogus'/, 'neotoma-ops worker'],
    [['status', 'extra-arg'], /too many arguments/, 'neotoma-ops status'],
    [['plan', '3f2a9c1e-0b7d-4e0a-9d1c-2a6b8f4e5d70', 'pro', 'extra'], /too many arguments/, 'neotoma-ops plan'],
    [['migrate', 'down', '--count', '0'], /--count <n>' argument '0' is invalid/, 'neotoma-ops migrate down'],
    [['worker', '--concurrency', 'many'], /--concurrency <n>' argument 'many' is invalid/, 'neotoma-ops worker'],
    [['bogus'], /unknown command 'bogus'/, 'neotoma-ops'],
    [['usage'], /missing required argument 'user-id'/, 'neotoma-ops usage'],
  ])('%j: one line, the usage, exit 2', async (args, message, usage) => {
    const r = await runCli(args, NOWHERE);
    expect(r.code).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines[0]).toMatch(/^neotoma-ops: /);
    expect(lines[0]).toMatch(message);
    expect(lines[1]).toMatch(new RegExp(`^Usage: ${usage} `));
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(r.stdout).toBe('');
  });

  it('requeue without arguments names both ways to call it', async () => {
    const r = await runCli(['requeue'], NOWHERE);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/id of a failed upload job, or --all-failed/);
  });
});

describe('demo on a database it did not create', () => {
  let db: Throwaway;
  let c: pg.Client;
  beforeAll(async () => {
    db = await throwawayCluster();
    c = await client(db.url);
  }, 120_000);
  afterAll(async () => {
    await c?.end();
    await db?.destroy();
  });

  it('refuses without --yes and writes nothing', async () => {
    const r = await runCli(['demo'], { DATABASE_URL: db.url });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--yes/);
    expect((await c.query(`SELECT to_regclass('public.storage_usage') AS t`)).rows[0]).toEqual({ t: null });
  });

  it('with --yes runs, then removes every row it wrote', async () => {
    const r = await runCli(['demo', '--yes'], { DATABASE_URL: db.url, NEOTOMA_HOME: path.join(db.dir, 'home') });
    expect(r.code, r.stderr).toBe(0);
    const user = /Removed what the demo wrote for user ([0-9a-f-]{36})/.exec(r.stdout)?.[1];
    expect(user).toBeDefined();
    const left = await c.query<{ n: string }>(
      `SELECT (SELECT count(*) FROM public.sources WHERE user_id = $1) + (SELECT count(*) FROM public.interpretation_runs WHERE user_id = $1)
            + (SELECT count(*) FROM public.storage_usage WHERE user_id = $1) + (SELECT count(*) FROM public.upload_queue WHERE user_id = $1) AS n`,
      [user],
    );
    expect(left.rows[0]!.n).toBe('0');
  }, 120_000);
});
