import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkCron, checkServerVersion } from '../../src/db/preflight.js';
import { OperationalError } from '../../src/errors.js';
import { projectRoot } from '../../src/paths.js';
import { runCli, testDatabaseUrl, throwawayCluster, type Throwaway } from './helpers/db.js';

const execFileP = promisify(execFile);

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function withUrl(change: (u: URL) => void): string {
  const u = new URL(testDatabaseUrl());
  change(u);
  return u.toString();
}

function expectOperational(r: { code: number; stderr: string }, pattern: RegExp): void {
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr).not.toMatch(/^\s+at /m); // no stack trace without DEBUG
}

describe('operational errors from the CLI', () => {
  it('names host, port and database when nothing listens there', async () => {
    const port = await closedPort();
    const r = await runCli(['migrate', 'status'], { DATABASE_URL: `postgres://postgres:x@127.0.0.1:${port}/neotoma` });
    expectOperational(r, new RegExp(`database "neotoma" on 127\\.0\\.0\\.1:${port}: connection refused`));
    expect(r.stderr).toMatch(/DATABASE_URL/);
  });

  it('says the password is wrong', async () => {
    const url = withUrl((u) => {
      u.password = 'definitely-wrong';
    });
    const r = await runCli(['migrate', 'up'], { DATABASE_URL: url });
    expectOperational(r, /password authentication failed for user "postgres"/);
  });

  it('says the database does not exist and how to create it', async () => {
    const url = withUrl((u) => {
      u.pathname = '/no_such_db';
    });
    const r = await runCli(['migrate', 'up'], { DATABASE_URL: url });
    expectOperational(r, /database "no_such_db" does not exist\. Create it \(createdb .* no_such_db\)/);
  });

  it('says DATABASE_URL is malformed', async () => {
    const r = await runCli(['migrate', 'up'], { DATABASE_URL: 'not a url' });
    expectOperational(r, /DATABASE_URL is not a valid URL/);
  });

  it('refuses PostgreSQL older than 15', () => {
    expect(() => checkServerVersion(140010, '14.10')).toThrow(OperationalError);
    expect(() => checkServerVersion(140010, '14.10')).toThrow(/PostgreSQL 14\.10 is too old: neotoma-ops needs PostgreSQL 15/);
    expect(() => checkServerVersion(150018, '15.18')).not.toThrow();
  });

  it('names the cron.database_name mismatch', () => {
    expect(() =>
      checkCron({ installed: false, available: true, preloadLibraries: 'pg_cron', cronDatabase: 'postgres', database: 'neotoma' }),
    ).toThrow(/cron\.database_name = 'neotoma'/);
  });
});

describe('pg_cron not preloaded', () => {
  let db: Throwaway;
  beforeAll(async () => {
    db = await throwawayCluster({ withoutCron: true });
  });
  afterAll(async () => {
    await db.destroy();
  });

  it('names the setting to add and the Supabase way, and changes nothing', async () => {
    const r = await runCli(['migrate', 'up'], { DATABASE_URL: db.url });
    expectOperational(r, /shared_preload_libraries = 'pg_cron'/);
    expect(r.stderr).toMatch(/cron\.database_name = 'neotoma'/);
    expect(r.stderr).toMatch(/Supabase/);
    const status = await runCli(['migrate', 'status'], { DATABASE_URL: db.url });
    expect(status.stdout).not.toMatch(/^applied/m);
  });
});

describe('missing apt packages without root', () => {
  it('prints the exact install command and exits 2', async () => {
    // a copy the unprivileged user can read, wherever the project lives (root's home is 0700)
    const dir = await mkdtemp(path.join(os.tmpdir(), 'neotoma-ensure-'));
    await chmod(dir, 0o755);
    const script = path.join(dir, 'ensure-postgres.sh');
    await copyFile(path.join(projectRoot, 'scripts', 'ensure-postgres.sh'), script);
    await chmod(script, 0o644);
    const env = { ...process.env, NEOTOMA_PG_PACKAGES: 'postgresql-15 neotoma-no-such-package' };
    // as root, drop to an unprivileged user so that the script cannot install
    const [cmd, args] =
      process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', 'bash', script]] : ['bash', [script]];
    const err = await execFileP(cmd, args as string[], { env }).then(
      () => undefined,
      (e: { code?: number; stderr?: string }) => e,
    );
    expect(err?.code).toBe(2);
    expect(err?.stderr).toMatch(/missing: neotoma-no-such-package\./);
    expect(err?.stderr).toMatch(/sudo apt-get update && sudo apt-get install -y neotoma-no-such-package/);
    await rm(dir, { recursive: true, force: true });
  });
});
