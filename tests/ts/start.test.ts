import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalCluster } from '../../src/db/cluster.js';
import { projectRoot } from '../../src/paths.js';
import net from 'node:net';
import { client } from './helpers/db.js';
import { enqueueJobs, waitFor } from './helpers/upload.js';

interface Started {
  child: ChildProcess;
  url: string;
  output: () => string;
}

/** `neotoma-ops start` with DATABASE_URL unset, resolved once it reports it is running. */
function startEmbedded(home: string, extra: Record<string, string> = {}): Promise<Started> {
  const env: NodeJS.ProcessEnv = { ...process.env, METRICS_PORT: 'off', NEOTOMA_HOME: home, ...extra };
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

/** SIGINT, then the exit code (or the signal that ended the process, with its output, for a failure message). */
function stop(s: Started): Promise<number | string> {
  return new Promise((resolve) => {
    s.child.removeAllListeners('exit');
    s.child.on('exit', (code, signal) => resolve(code ?? `${signal}:\n${s.output()}`));
    s.child.kill('SIGINT');
  });
}

/** A NEOTOMA_HOME the postgres OS user can enter. */
async function makeHome(): Promise<string> {
  const home = await mkdtemp(path.join(os.tmpdir(), 'neotoma-home-'));
  await chmod(home, 0o755);
  return home;
}

async function removeHome(home: string): Promise<void> {
  await new LocalCluster(path.join(home, 'db')).destroy().catch(() => undefined);
  await rm(home, { recursive: true, force: true });
}

describe('npm start on the embedded database', () => {
  let home: string;
  beforeAll(async () => {
    home = await makeHome();
  });
  afterAll(() => removeHome(home));

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

describe('npm start never leaves its database running', () => {
  let home: string;
  beforeAll(async () => {
    home = await makeHome();
  });
  afterAll(() => removeHome(home));

  it('a second Ctrl-C while uploads are in flight still stops the embedded database before exiting', async () => {
    // storage that accepts connections and never answers: the upload stays in flight
    const sockets: net.Socket[] = [];
    const silent = net.createServer((sock) => sockets.push(sock));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', () => resolve()));
    const endpoint = `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
    const s = await startEmbedded(home, {
      STORAGE_BACKEND: 's3', S3_ENDPOINT: endpoint, S3_ACCESS_KEY_ID: 'x', S3_SECRET_ACCESS_KEY: 'y',
      UPLOAD_TIMEOUT_MS: '60000', SHUTDOWN_GRACE_MS: '60000', WORKER_POLL_INTERVAL_MS: '200',
    });
    const c = await client(s.url);
    try {
      await enqueueJobs(c, 1);
    } finally {
      await c.end();
    }
    await waitFor('the upload in flight', async () => sockets.length > 0, 15_000);
    const exited = new Promise<number | null>((resolve) => {
      s.child.removeAllListeners('exit');
      s.child.on('exit', (code) => resolve(code));
    });
    s.child.kill('SIGINT');
    await waitFor('the graceful stop to begin', async () => /SIGINT received, stopping/.test(s.output()), 10_000);
    s.child.kill('SIGINT');
    expect(await exited).toBe(130);
    for (const sock of sockets) sock.destroy();
    silent.close();
    expect(s.output()).toMatch(/received again: stopping the embedded database now/);
    expect(await new LocalCluster(path.join(home, 'db')).isRunning()).toBe(false);
  });

  it('a start killed outright leaves the database running; the next start takes it over, says so, and stops it', async () => {
    const first = await startEmbedded(home);
    const killed = new Promise<void>((resolve) => {
      first.child.removeAllListeners('exit');
      first.child.on('exit', () => resolve());
    });
    first.child.kill('SIGKILL');
    await killed;
    expect(await new LocalCluster(path.join(home, 'db')).isRunning()).toBe(true);
    const second = await startEmbedded(home);
    expect(second.output()).toMatch(/taking over the embedded database left running by a start that ended \(pid \d+\)/);
    expect(await stop(second)).toBe(0);
    expect(await new LocalCluster(path.join(home, 'db')).isRunning()).toBe(false);
  });
});

describe('npm start as root from a folder the postgres OS user cannot enter', () => {
  const isRoot = process.getuid?.() === 0;
  let parent: string;
  let home: string;
  beforeAll(async () => {
    parent = await mkdtemp(path.join(os.tmpdir(), 'neotoma-private-'));
    await chmod(parent, 0o700); // as /root is
    home = path.join(parent, 'project', '.neotoma');
  });
  afterAll(async () => {
    const { SHARED_CLUSTERS_DIR } = await import('../../src/start.js');
    const { createHash } = await import('node:crypto');
    const shared = path.join(SHARED_CLUSTERS_DIR, createHash('sha256').update(home).digest('hex').slice(0, 16));
    await new LocalCluster(path.join(shared, 'db')).destroy().catch(() => undefined);
    await rm(shared, { recursive: true, force: true });
    await rm(parent, { recursive: true, force: true });
  });

  it.runIf(isRoot)('puts the cluster where postgres can live, says where, and runs', async () => {
    const s = await startEmbedded(home);
    expect(s.output()).toMatch(/the postgres OS user cannot enter .*: the embedded database lives in \/var\/lib\/neotoma-ops\/[0-9a-f]{16}\/db instead/);
    const c = await client(s.url);
    try {
      expect((await c.query<{ ok: number }>('SELECT 1 AS ok')).rows[0]?.ok).toBe(1);
    } finally {
      await c.end();
    }
    expect(await stop(s)).toBe(0);
  });
});
