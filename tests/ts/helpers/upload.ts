import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import path from 'node:path';
import type pg from 'pg';
import { migrateUp } from '../../../src/migrate.js';
import { projectRoot } from '../../../src/paths.js';
import { throwawayCluster, type Throwaway } from './db.js';

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A migrated cluster of its own: workers claim every due job of a database, so each suite has its own. */
export async function migratedCluster(): Promise<Throwaway> {
  const t = await throwawayCluster();
  try {
    await migrateUp(t.url, { log: () => undefined });
  } catch (err) {
    await t.destroy();
    throw err;
  }
  return t;
}

export interface QueuedJob {
  jobId: string;
  sourceId: string;
  content: Buffer;
  key: string;
}

/** n sources in storage_status 'pending' with their bytes enqueued, all due now. */
export async function enqueueJobs(c: pg.ClientBase, n: number, userId: string = randomUUID(), size = 64): Promise<QueuedJob[]> {
  const jobs: QueuedJob[] = [];
  const contents = Array.from({ length: n }, (_, i) => {
    const head = Buffer.from(`job ${i} ${randomUUID()} `);
    return Buffer.concat([head, Buffer.alloc(Math.max(0, size - head.length), 120)]);
  });
  const hashes = contents.map(sha256);
  const { rows } = await c.query<{ id: string; content_hash: string }>(
    `INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size, storage_status)
     SELECT $1::uuid, h, 'text/plain', $1::text || '/' || h, s, 'pending' FROM unnest($2::text[], $3::bigint[]) AS t(h, s)
     RETURNING id, content_hash`,
    [userId, hashes, contents.map((b) => b.length)],
  );
  const byHash = new Map(rows.map((r) => [r.content_hash, r.id]));
  for (let i = 0; i < n; i += 100) {
    const ids = hashes.slice(i, i + 100).map((h) => byHash.get(h)!);
    const slice = contents.slice(i, i + 100);
    const { rows: queued } = await c.query<{ source_id: string; job_id: string }>(
      `SELECT s AS source_id, public.enqueue_upload(s, b) AS job_id FROM unnest($1::uuid[], $2::bytea[]) AS t(s, b)`,
      [ids, slice],
    );
    queued.forEach((q, j) => jobs.push({ jobId: q.job_id, sourceId: q.source_id, content: slice[j]!, key: `${userId}/${hashes[i + j]}` }));
  }
  await makeDue(c);
  return jobs;
}

/** Backdates every pending job so it is due now (instead of waiting out the retry delay). */
export async function makeDue(c: pg.ClientBase | pg.Pool): Promise<void> {
  await c.query(`UPDATE public.upload_queue SET next_retry_at = now() - interval '1 second' WHERE status = 'pending'`);
}

export async function jobStatus(c: pg.ClientBase | pg.Pool): Promise<Record<string, number>> {
  const { rows } = await c.query<{ status: string; n: number }>('SELECT status, count(*)::int AS n FROM public.upload_queue GROUP BY status');
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 20_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface WorkerProcess {
  child: ChildProcess;
  output: string[];
  /** Resolves with the first output line matching `re`. */
  line(re: RegExp, timeoutMs?: number): Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** `node dist/cli.js worker ...` as a child process; output lines are collected. */
export function spawnWorker(args: string[], env: Record<string, string>): WorkerProcess {
  return spawnCli(['worker', ...args], env);
}

/** `node dist/cli.js ...` as a child process; output lines are collected. */
export function spawnCli(args: string[], env: Record<string, string>): WorkerProcess {
  const child = spawn(process.execPath, [path.join(projectRoot, 'dist', 'cli.js'), ...args], {
    env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', METRICS_PORT: 'off', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  const waiters = new Set<{ re: RegExp; resolve: (l: string) => void; reject: (e: Error) => void }>();
  const onData = (buf: Buffer): void => {
    for (const l of buf.toString().split('\n')) {
      if (!l) continue;
      output.push(l);
      for (const w of waiters) if (w.re.test(l)) (waiters.delete(w), w.resolve(l));
    }
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  let gone = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => {
      gone = true;
      resolve({ code, signal });
      for (const w of waiters) w.reject(new Error(`the process exited (${code ?? signal}) before printing ${w.re}; output:\n${output.join('\n')}`));
      waiters.clear();
    }),
  );
  return {
    child,
    output,
    exited,
    line(re, timeoutMs = 15_000) {
      const seen = output.find((l) => re.test(l));
      if (seen) return Promise.resolve(seen);
      if (gone) return Promise.reject(new Error(`the process has exited; no line matching ${re}; output:\n${output.join('\n')}`));
      return new Promise((resolve, reject) => {
        const w = { re, resolve: (l: string) => (clearTimeout(t), resolve(l)), reject: (e: Error) => (clearTimeout(t), reject(e)) };
        const t = setTimeout(() => {
          waiters.delete(w);
          reject(new Error(`no line matching ${re} within ${timeoutMs} ms; output:\n${output.join('\n')}`));
        }, timeoutMs);
        waiters.add(w);
      });
    },
  };
}

/** Parses the worker's closing line `stopped (claimed=N completed=N ...)`. */
export function workerSummary(output: string[]): Record<string, number> {
  const line = output.find((l) => / stopped \(claimed=/.test(l));
  if (!line) throw new Error(`no summary line in worker output:\n${output.join('\n')}`);
  return Object.fromEntries([...line.matchAll(/(\w+)=(\d+)/g)].map((m) => [m[1]!, Number(m[2])]));
}
