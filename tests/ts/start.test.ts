import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster } from '../../src/db/cluster.js';
import { projectRoot } from '../../src/paths.js';
import { client } from './helpers/db.js';

interface Started {
  child: ChildProcess;
  url: string;
  output: () => string;
}

/** `neotoma-ops start` with DATABASE_URL unset, resolved once it reports it is running. */
function startEmbedded(home: string): Promise<Started> {
  const env: NodeJS.ProcessEnv = { ...process.env, NEOTOMA_HOME: home };
  delete env.DATABASE_URL;
  const child = spawn(process.execPath, [path.join(projectRoot, 'dist', 'cli.js'), 'start'], { env });
  let out = '';
  return new Promise((resolve, reject) => {
    const onData = (d: Buffer): void => {
      out += d.toString();
      const url = /^database:\s+(\S+)/m.exec(out)?.[1];
      if (url && /running; press Ctrl-C/.test(out)) resolve({ child, url, output: () => out });
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => reject(new Error(`start exited with ${code}:\n${out}`)));
  });
}

function stop(s: Started): Promise<number | null> {
  return new Promise((resolve) => {
    s.child.removeAllListeners('exit');
    s.child.on('exit', (code) => resolve(code));
    s.child.kill('SIGINT');
  });
}

describe('npm start on the embedded database', () => {
  let home: string;
  beforeAll(async () => {
    home = await mkdtemp(path.join(os.tmpdir(), 'neotoma-home-'));
    await chmod(home, 0o755);
  });
  afterAll(async () => {
    await new LocalCluster(path.join(home, 'db')).destroy().catch(() => undefined);
    await rm(home, { recursive: true, force: true });
  });

  it('creates the cluster with pg_cron, stops it on Ctrl-C, and keeps the data for the next start', async () => {
    const first = await startEmbedded(home);
    const c = await client(first.url);
    try {
      const preload = await c.query<{ v: string }>(`SELECT current_setting('shared_preload_libraries') AS v`);
      expect(preload.rows[0]?.v).toContain('pg_cron');
      await c.query('SELECT jobid FROM cron.job'); // pg_cron is installed and readable
      await c.query(`CREATE TABLE public.kept_between_starts (note text); INSERT INTO public.kept_between_starts VALUES ('hello')`);
    } finally {
      await c.end();
    }
    expect(await stop(first)).toBe(0);
    expect(first.output()).toMatch(/embedded database stopped/);
    expect(await new LocalCluster(path.join(home, 'db')).url()).toBe(first.url);

    const second = await startEmbedded(home);
    expect(second.url).toBe(first.url);
    expect(second.output()).not.toMatch(/creating the embedded/);
    const c2 = await client(second.url);
    try {
      const { rows } = await c2.query<{ note: string }>('SELECT note FROM public.kept_between_starts');
      expect(rows).toEqual([{ note: 'hello' }]);
    } finally {
      await c2.end();
    }
    expect(await stop(second)).toBe(0);
  });
});
