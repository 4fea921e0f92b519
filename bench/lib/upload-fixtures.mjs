// Shared by the upload benchmarks: a throwaway cluster and due / not-yet-due upload jobs.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const { LocalCluster } = await import(path.join(root, 'dist', 'db', 'cluster.js'));

export const sha = (b) => createHash('sha256').update(b).digest('hex');
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** DATABASE_URL, or a throwaway PostgreSQL 15 cluster (fsync off) removed by destroy(). */
export async function database() {
  if (process.env.DATABASE_URL) return { url: process.env.DATABASE_URL, destroy: async () => undefined };
  const dir = await mkdtemp(path.join(os.tmpdir(), 'neotoma-bench-'));
  await chmod(dir, 0o755);
  const cluster = new LocalCluster(path.join(dir, 'cluster'));
  await cluster.init({ database: 'neotoma', fast: true });
  const url = await cluster.start();
  return { url, destroy: async () => { await cluster.destroy(); await rm(dir, { recursive: true, force: true }); } };
}

/** n due jobs with small payloads. */
export async function enqueue(c, n, size = 100) {
  const user = randomUUID();
  for (let i = 0; i < n; i += 500) {
    const contents = Array.from({ length: Math.min(500, n - i) }, () => randomBytes(size));
    const hashes = contents.map(sha);
    const { rows } = await c.query(
      `INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size, storage_status)
       SELECT $1::uuid, h, 'application/octet-stream', $1::text || '/' || h, $3, 'pending' FROM unnest($2::text[]) AS h
       RETURNING id, content_hash`,
      [user, hashes, size],
    );
    const id = new Map(rows.map((r) => [r.content_hash, r.id]));
    await c.query('SELECT public.enqueue_upload(s, b) FROM unnest($1::uuid[], $2::bytea[]) AS t(s, b)', [hashes.map((h) => id.get(h)), contents]);
  }
  await c.query(`UPDATE public.upload_queue SET next_retry_at = now() WHERE status = 'pending'`);
}

/** One job of 100 bytes, queued (its first retry not yet due). */
export async function enqueueOneNotDue(c) {
  const b = randomBytes(100);
  const h = sha(b);
  const u = randomUUID();
  const { rows } = await c.query(
    `INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size, storage_status)
     VALUES ($1::uuid, $2, 'application/octet-stream', $1::text || '/' || $2, 100, 'pending') RETURNING id`,
    [u, h],
  );
  await c.query('SELECT public.enqueue_upload($1, $2)', [rows[0].id, b]);
}

/**
 * Due → stored latency of one idle worker: each sample makes the one pending job due and sends NOTIFY in the
 * same transaction (a worker that cannot hear it finds the job at its next poll); the time is from that commit
 * to the storage put. `makeWorker(storage, log)` returns an UploadWorker; `ready` is the log text that says the
 * worker waits. `arrivalSpreadMs` > 0 waits a random 0 – arrivalSpreadMs before each sample, so that jobs do not
 * arrive in step with a polling worker's timer.
 */
export async function dueToStoredLatency(c, samples, makeWorker, ready, arrivalSpreadMs = 0) {
  await c.query('DELETE FROM public.upload_queue');
  const stored = new Map();
  const storage = { backend: 'noop', put: async (r) => { stored.set(r.key, performance.now()); } };
  const lines = [];
  const worker = makeWorker(storage, (l) => lines.push(l));
  const running = worker.run();
  while (!lines.some((l) => l.includes(ready))) await sleep(5);
  await sleep(200);
  const times = [];
  for (let i = 0; i < samples; i++) {
    await enqueueOneNotDue(c);
    const { rows } = await c.query(`SELECT storage_path FROM public.upload_queue WHERE status = 'pending'`);
    const key = rows[0].storage_path;
    if (arrivalSpreadMs > 0) await sleep(Math.random() * arrivalSpreadMs);
    const t0 = performance.now();
    await c.query(`BEGIN; UPDATE public.upload_queue SET next_retry_at = now() WHERE status = 'pending'; NOTIFY upload_queue, '{"event":"due"}'; COMMIT`);
    while (!stored.has(key)) await sleep(0.2);
    times.push(stored.get(key) - t0);
    for (;;) {
      const { rows: r } = await c.query(`SELECT count(*)::int AS n FROM public.upload_queue WHERE status <> 'completed'`);
      if (r[0].n === 0) break;
      await sleep(1);
    }
    await sleep(20);
  }
  worker.stop();
  await running;
  times.sort((a, b) => a - b);
  const q = (p) => times[Math.min(times.length - 1, Math.floor(p * times.length))];
  return { p50: q(0.5), p99: q(0.99), max: times.at(-1) };
}
