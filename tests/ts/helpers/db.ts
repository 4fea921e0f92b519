import { execFile } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { LocalCluster, type ClusterOptions } from '../../../src/db/cluster.js';
import { projectRoot } from '../../../src/paths.js';

const execFileP = promisify(execFile);

/** The migrated database the test run prepared (scripts/test.sh). */
export function testDatabaseUrl(): string {
  const url = process.env.NEOTOMA_TEST_DATABASE_URL ?? process.env.DATABASE_URL;
  if (!url) throw new Error('NEOTOMA_TEST_DATABASE_URL is not set: run the suite with `npm test`');
  return url;
}

/** The test run's mode: `supabase` when the suite runs as the non-superuser `postgres` of a Supabase-shaped cluster. */
export const testMode: 'plain' | 'supabase' = process.env.NEOTOMA_TEST_MODE === 'supabase' ? 'supabase' : 'plain';

/** The bootstrap superuser of the test database (supabase_admin in Supabase mode): for set-up only, never for what is tested. */
export function testAdminUrl(): string {
  return process.env.NEOTOMA_TEST_ADMIN_URL ?? testDatabaseUrl();
}

export async function client(url = testDatabaseUrl()): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  return c;
}

/** The PostgreSQL major of the test database (15, 17, …): tests of what differs between majors ask it. */
export async function serverMajor(url = testDatabaseUrl()): Promise<number> {
  const c = await client(url);
  try {
    const { rows } = await c.query<{ n: string }>(`SELECT current_setting('server_version_num') AS n`);
    return Math.floor(Number(rows[0]!.n) / 10000);
  } finally {
    await c.end();
  }
}

export interface Throwaway {
  cluster: LocalCluster;
  url: string;
  /** The bootstrap superuser's URL (for set-up such as creating pgTAP), see LocalCluster.adminUrl. */
  adminUrl: string;
  dir: string;
  destroy(): Promise<void>;
}

/**
 * A fresh, empty cluster of its own (for migration and fault tests), shaped like the test run's mode
 * (Supabase-shaped in Supabase mode); destroy() deletes it.
 */
export async function throwawayCluster(options: ClusterOptions = {}): Promise<Throwaway> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'neotoma-tc-'));
  await chmod(dir, 0o755);
  const cluster = new LocalCluster(path.join(dir, 'cluster'));
  await cluster.init({ database: 'neotoma', fast: true, supabase: testMode === 'supabase', ...options });
  const url = await cluster.start();
  const adminUrl = await cluster.adminUrl();
  return {
    cluster,
    url,
    adminUrl,
    dir,
    async destroy() {
      await cluster.destroy().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI (dist/cli.js) as a separate process. */
export async function runCli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [path.join(projectRoot, 'dist', 'cli.js'), ...args], {
      env: { ...process.env, ...env },
      maxBuffer: 16 << 20,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}
