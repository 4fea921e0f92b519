// A real pgbouncer (Debian package `pgbouncer`) in front of a database, for the tests and benchmarks that must run
// through a connection pooler as Supabase's offers it (session or transaction pool mode).
import { execFile, spawn } from 'node:child_process';
import { chmod, chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);

/** A TCP port free on 127.0.0.1 now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    const ok = await new Promise((resolve) => {
      const c = net.connect(port, '127.0.0.1');
      c.once('connect', () => (c.destroy(), resolve(true)));
      c.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`pgbouncer did not listen on ${port} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Starts pgbouncer in front of `targetUrl`. Clients log in without a password (auth_type any: tests only);
 * pgbouncer logs in to PostgreSQL with the target URL's credentials. Runs as the postgres OS user when started
 * as root (pgbouncer refuses root).
 */
export async function startPgbouncer(targetUrl, mode, poolSize = 4) {
  const t = new URL(targetUrl);
  const db = decodeURIComponent(t.pathname.slice(1));
  const dir = await mkdtemp(path.join(os.tmpdir(), 'neotoma-pgbouncer-'));
  await chmod(dir, 0o755);
  const port = await freePort();
  const conn = [`host=${t.hostname}`, `port=${t.port || 5432}`, `dbname=${db}`, `user=${decodeURIComponent(t.username)}`,
    `password=${decodeURIComponent(t.password)}`].join(' ');
  const ini = [
    '[databases]',
    `${db} = ${conn}`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    'unix_socket_dir =',
    'auth_type = any',
    `pool_mode = ${mode}`,
    'max_client_conn = 500',
    `default_pool_size = ${poolSize}`,
    'ignore_startup_parameters = extra_float_digits,options',
    `logfile = ${path.join(dir, 'pgbouncer.log')}`,
    `pidfile = ${path.join(dir, 'pgbouncer.pid')}`,
    '',
  ].join('\n');
  const iniPath = path.join(dir, 'pgbouncer.ini');
  await writeFile(iniPath, ini, { mode: 0o600 });
  const root = process.getuid?.() === 0;
  if (root) {
    const uid = Number((await execFileP('id', ['-u', 'postgres'])).stdout.trim());
    const gid = Number((await execFileP('id', ['-g', 'postgres'])).stdout.trim());
    await chown(dir, uid, gid);
    await chown(iniPath, uid, gid);
  }
  const [cmd, args] = root ? ['runuser', ['-u', 'postgres', '--', '/usr/sbin/pgbouncer', '-d', iniPath]] : ['/usr/sbin/pgbouncer', ['-d', iniPath]];
  await new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: 'ignore' });
    p.once('error', reject);
    p.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`pgbouncer exited ${code}`))));
  });
  await waitForPort(port, 10_000);
  return {
    url: `postgres://${t.username}:x@127.0.0.1:${port}/${db}`,
    mode,
    async stop() {
      const pid = Number((await readFile(path.join(dir, 'pgbouncer.pid'), 'utf8').catch(() => '')).trim());
      if (pid) {
        try {
          process.kill(pid, 'SIGTERM'); // immediate shutdown (SIGINT would wait for every client to leave)
        } catch {
          // already gone
        }
        for (let i = 0; i < 100; i++) {
          try {
            process.kill(pid, 0);
          } catch {
            break;
          }
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
