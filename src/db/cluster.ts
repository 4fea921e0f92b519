import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { OperationalError } from '../errors.js';
import { scriptsDir } from '../paths.js';

const run = promisify(execFile);

export interface ClusterOptions {
  /** Database the project uses; pg_cron's cron.database_name points at it. */
  database?: string;
  /** Throwaway cluster: no fsync. */
  fast?: boolean;
  /** Leave pg_cron out of shared_preload_libraries (to test that error). */
  withoutCron?: boolean;
  /** Shape it as a Supabase project: `postgres` is not a superuser (scripts/pg-cluster.sh --supabase). */
  supabase?: boolean;
}

async function script(name: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await run('bash', [path.join(scriptsDir, name), ...args], { maxBuffer: 1 << 20 });
    return stdout.trim();
  } catch (err) {
    const e = err as { stderr?: string; code?: number };
    const detail = (e.stderr ?? '').trim();
    throw new OperationalError(detail || `scripts/${name} ${args.join(' ')} failed (exit ${e.code ?? '?'})`, { cause: err });
  }
}

/** Installs PostgreSQL 15, pg_cron, pgTAP and pg_prove when missing (root), or says how to. */
export async function ensurePostgresPackages(): Promise<void> {
  await script('ensure-postgres.sh', []);
}

/** A local PostgreSQL 15 cluster kept in `dir` (pgdata, server.log, password, port). */
export class LocalCluster {
  constructor(readonly dir: string) {}

  exists(): boolean {
    return existsSync(path.join(this.dir, 'pgdata', 'PG_VERSION'));
  }

  /** Creates the cluster the first time; later calls reuse it. */
  async init(options: ClusterOptions = {}): Promise<void> {
    const flags = [
      ...(options.fast ? ['--fast'] : []),
      ...(options.withoutCron ? ['--no-cron'] : []),
      ...(options.supabase ? ['--supabase'] : []),
    ];
    await script('pg-cluster.sh', ['init', this.dir, options.database ?? 'neotoma', ...flags]);
  }

  /** Starts it (no-op when running) and returns its URL. */
  async start(): Promise<string> {
    return script('pg-cluster.sh', ['start', this.dir]);
  }

  async stop(): Promise<void> {
    await script('pg-cluster.sh', ['stop', this.dir]);
  }

  /** stop() for a process about to exit (a signal handler): blocks until PostgreSQL has stopped. */
  stopSync(): void {
    execFileSync('bash', [path.join(scriptsDir, 'pg-cluster.sh'), 'stop', this.dir], { stdio: 'ignore', timeout: 60_000 });
  }

  async destroy(): Promise<void> {
    await script('pg-cluster.sh', ['destroy', this.dir]);
  }

  async isRunning(): Promise<boolean> {
    if (!this.exists()) return false;
    return run('bash', [path.join(scriptsDir, 'pg-cluster.sh'), 'status', this.dir]).then(
      () => true,
      () => false,
    );
  }

  async url(): Promise<string> {
    return script('pg-cluster.sh', ['url', this.dir]);
  }

  /** URL of the bootstrap superuser (`postgres`, or `supabase_admin` in a Supabase-shaped cluster). */
  async adminUrl(): Promise<string> {
    return script('pg-cluster.sh', ['admin-url', this.dir]);
  }
}
