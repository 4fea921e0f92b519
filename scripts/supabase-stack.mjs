// The real Supabase parts the tests and benchmarks run against, from the `shared/tools` folder beside the
// repository (NEOTOMA_SHARED_DIR overrides where): the Supabase Storage API server behind its /storage/v1 gateway,
// and the upload-queue-processor Edge Function under Deno (the npm package `deno`, a devDependency).
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { freePort } from './pgbouncer.mjs';

const execFileP = promisify(execFile);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The shared folder beside the repository (or NEOTOMA_SHARED_DIR). */
export function sharedDir() {
  return path.resolve(process.env.NEOTOMA_SHARED_DIR ?? path.join(root, '..', 'shared'));
}

const storageTool = () => path.join(sharedDir(), 'tools', 'supabase-storage');

/** Why the real Storage server cannot run here, or undefined when it can. */
export function storageServerMissing() {
  const start = path.join(storageTool(), 'start.sh');
  return existsSync(start) ? undefined : `the Supabase Storage server's launcher ${start} is not here (shared/tools beside the repository)`;
}

function parseSettings(stdout) {
  const out = {};
  for (const line of stdout.split('\n')) {
    const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]] = m[2].replace(/^'(.*)'$/, '$1');
  }
  return out;
}

/**
 * Starts the real Supabase Storage API server (file backend) on `databaseUrl` (a role that may create the API roles,
 * or a Supabase-shaped database where they exist), behind the /storage/v1 gateway. `fileSizeLimit` is the platform's
 * global upload limit (default 50 MB, as on Supabase's free plan).
 */
export async function startStorageServer({ databaseUrl, fileSizeLimit } = {}) {
  const missing = storageServerMissing();
  if (missing) throw new Error(missing);
  const state = await mkdtemp(path.join(os.tmpdir(), 'neotoma-storage-'));
  const args = ['--database-url', databaseUrl, '--state', state, ...(fileSizeLimit ? ['--file-size-limit', String(fileSizeLimit)] : [])];
  let stdout;
  try {
    ({ stdout } = await execFileP('bash', [path.join(storageTool(), 'start.sh'), ...args], { maxBuffer: 1 << 20, timeout: 300_000 }));
  } catch (err) {
    await rm(state, { recursive: true, force: true });
    throw new Error(`the Supabase Storage server did not start: ${(err.stderr ?? err.message).trim()}`, { cause: err });
  }
  const s = parseSettings(stdout);
  const stopTool = () => execFileP('bash', [path.join(storageTool(), 'stop.sh'), state]).catch(() => undefined);
  const killGroup = async (file) => {
    const pid = Number((await execFileP('cat', [path.join(state, file)]).catch(() => ({ stdout: '' }))).stdout.trim());
    if (!pid) return;
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // gone already
    }
  };
  return {
    url: s.SUPABASE_URL,
    serviceRoleKey: s.SUPABASE_SERVICE_ROLE_KEY,
    anonKey: s.SUPABASE_ANON_KEY,
    secretKey: s.SUPABASE_SECRET_KEY,
    secretKeys: s.SUPABASE_SECRET_KEYS,
    jwtSecret: s.SUPABASE_JWT_SECRET,
    state,
    /** Ends the storage server but leaves the gateway answering (as the platform does when Storage is down). */
    stopServer: () => killGroup('server.pid'),
    /** Ends the gateway too: nothing listens at `url` any more. */
    stopGateway: () => killGroup('gateway.pid'),
    async stop() {
      await stopTool();
      await rm(state, { recursive: true, force: true });
    },
  };
}

/** The deno binary of the `deno` devDependency. */
export function denoBinary() {
  return path.join(root, 'node_modules', '.bin', 'deno');
}

/** The folder of the Edge Function as deployed. */
export const EDGE_FUNCTION_DIR = path.join(root, 'supabase', 'functions', 'upload-queue-processor');

/**
 * Runs the unmodified index.ts of the Edge Function under Deno with `env` (as `supabase functions serve` would give
 * it), on a free port of 127.0.0.1; resolves once it answers HTTP. Its npm imports resolve through deno.json and
 * deno.lock from the npm registry (cached in DENO_DIR).
 */
export async function startEdgeFunction(env, { denoDir } = {}) {
  const port = await freePort();
  const output = [];
  const child = spawn(
    denoBinary(),
    ['run', '--quiet', '--frozen', '--allow-net', '--allow-env', 'index.ts'],
    {
      cwd: EDGE_FUNCTION_DIR,
      env: {
        PATH: process.env.PATH,
        HOME: process.env.HOME ?? os.tmpdir(),
        ...(process.env.NPM_CONFIG_REGISTRY ? { NPM_CONFIG_REGISTRY: process.env.NPM_CONFIG_REGISTRY } : {}),
        ...(denoDir ?? process.env.DENO_DIR ? { DENO_DIR: denoDir ?? process.env.DENO_DIR } : {}),
        NO_COLOR: '1',
        DENO_NO_UPDATE_CHECK: '1',
        DENO_SERVE_ADDRESS: `tcp:127.0.0.1:${port}`,
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const collect = (b) => output.push(...b.toString().split('\n').filter(Boolean));
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  let exited = false;
  child.once('exit', () => (exited = true));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000; // the first run downloads pg and storage-js from the npm registry
  for (;;) {
    const up = await fetch(url, { method: 'OPTIONS' }).then(() => true, () => false);
    if (up) break;
    if (exited || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`the Edge Function did not start under Deno:\n${output.join('\n')}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    output,
    async stop() {
      if (exited) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 5000))]);
      if (!exited) child.kill('SIGKILL');
    },
  };
}
