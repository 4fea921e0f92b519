import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { collectStatus, renderStatus } from './commands/status.js';
import { collectUsage, renderUsage } from './commands/usage.js';
import { createPool } from './db/connect.js';
import { OperationalError } from './errors.js';
import { withHeartbeat } from './heartbeat.js';
import { ingestSource, type IngestResult } from './ingest.js';
import { readOpsMetrics } from './metrics/registry.js';
import { migrateUp } from './migrate.js';
import { neotomaHome } from './paths.js';
import { FsStorage } from './storage/fs.js';
import { StorageError, type PutRequest, type StorageAdapter } from './storage/types.js';
import { UploadWorker } from './worker/worker.js';

type Print = (line: string) => void;

/** File storage that the demo can take down (an outage) or make refuse writes (HTTP 403). */
class DemoStorage implements StorageAdapter {
  readonly backend = 'demo';
  mode: 'up' | 'down' | 'forbidden' = 'up';
  constructor(readonly inner: FsStorage) {}
  async put(request: PutRequest): Promise<void> {
    if (this.mode === 'down') {
      throw new StorageError('storage unreachable: connect ECONNREFUSED (simulated outage)', { retryable: true, code: 'ECONNREFUSED' });
    }
    if (this.mode === 'forbidden') {
      throw new StorageError('storage answered 403 Forbidden (simulated: bucket policy denies writes)', { retryable: false, status: 403 });
    }
    await this.inner.put(request);
  }
}

const KiB = 1024;

function file(bytes: number, label: string): Buffer {
  return Buffer.concat([Buffer.from(`${label}\n`), randomBytes(bytes - label.length - 1)]);
}

interface PgError {
  code?: string;
  message: string;
  detail?: string;
  hint?: string;
}

/**
 * `neotoma-ops demo`: a guided tour on the embedded database (or DATABASE_URL) in well under a minute.
 * It uses only what a client or an operator uses (the SQL functions and the documented settings), never a
 * write to the queue's or the runs' columns: a backoff is cut short with retry_upload_job_now(), a hung run
 * gets a one-second timeout. Ends with `status` and a check that every metric the tour should have moved is
 * non-zero; throws when one is not.
 */
export interface DemoOptions {
  /** The database is DATABASE_URL's, not the embedded one neotoma-ops created. */
  foreignDatabase?: boolean;
  /** The operator said --yes: run on a foreign database anyway (what the demo wrote is removed afterwards). */
  confirmed?: boolean;
}

export async function runDemo(databaseUrl: string, print: Print = (l) => console.log(l), options: DemoOptions = {}): Promise<void> {
  if (options.foreignDatabase && !options.confirmed) {
    throw new OperationalError(
      'demo writes a demo user, sources, uploads and interpretation runs: it runs on the embedded database ' +
        '(unset DATABASE_URL), or on DATABASE_URL only with --yes, after which it removes what it wrote ' +
        '(monotonic counters such as quota rejections keep the steps it counted).',
    );
  }
  const step = (n: number, title: string, why: string): void => {
    print('');
    print(`── ${n}. ${title}`);
    print(`   ${why}`);
  };
  await migrateUp(databaseUrl);
  const pool = createPool(databaseUrl, 4, 'neotoma-ops demo');
  const root = path.join(neotomaHome(), 'demo-storage');
  const storage = new DemoStorage(new FsStorage({ root, durable: false }));
  const user = randomUUID();
  const drainOnce = async (): Promise<void> => {
    await new UploadWorker({ databaseUrl, storage, once: true, concurrency: 1, workerId: 'demo-worker', log: () => undefined }).run();
  };
  const job = async (jobId: string) =>
    (
      await pool.query<{ status: string; retry_count: number; due_in: string | null; error_message: string | null; has_bytes: boolean }>(
        `SELECT q.status, q.retry_count, q.error_message,
                CASE WHEN q.status = 'pending' THEN to_char(q.next_retry_at - now(), 'MI"m "SS"s"') END AS due_in,
                EXISTS (SELECT 1 FROM public.upload_queue_payloads p WHERE p.job_id = q.id) AS has_bytes
           FROM public.upload_queue q WHERE q.id = $1`,
        [jobId],
      )
    ).rows[0]!;
  const retryNow = (jobId: string) => pool.query('SELECT public.retry_upload_job_now($1)', [jobId]);
  const ingest = (bytes: Buffer, name: string): Promise<IngestResult> =>
    ingestSource(pool, { userId: user, content: bytes, mimeType: 'application/octet-stream', filename: name }, { storage, uploadTimeoutMs: 2000 });
  const refused = async (what: () => Promise<unknown>): Promise<PgError> => {
    try {
      await what();
    } catch (err) {
      return err as PgError;
    }
    throw new Error('the demo expected this write to be refused, and it was accepted');
  };
  const showError = (e: PgError): void => {
    print(`   refused, SQLSTATE ${e.code}: ${e.message}`);
    if (e.detail) print(`   detail: ${e.detail}`);
    if (e.hint) print(`   hint:   ${e.hint}`);
  };

  try {
    print(`neotoma-ops demo: user ${user}, objects stored under ${root}`);

    step(1, 'A user on a tiny plan', 'Plans are rows; this user gets per-user overrides: 64 KiB of storage, 2 interpretations, 48 KiB per file.');
    await pool.query(`SELECT public.set_user_plan($1, 'free')`, [user]);
    await pool.query(
      `UPDATE public.storage_usage SET storage_limit_bytes_override = $2, interpretation_limit_month_override = 2,
              max_file_bytes_override = $3 WHERE user_id = $1`,
      [user, 64 * KiB, 48 * KiB],
    );
    print(renderUsage(await collectUsage(pool, user)).replace(/^/gm, '   '));

    step(2, 'An upload that fits', 'Storage is up: the bytes are stored at once and the source row says uploaded.');
    const first = await ingest(file(40 * KiB, 'notes.pdf'), 'notes.pdf');
    print(`   ${first.status}: source ${first.sourceId} (${first.byteSize} bytes)`);

    step(3, 'An upload over the storage quota', 'The trigger on sources refuses it, whatever the client; nothing is written.');
    showError(await refused(() => ingest(file(30 * KiB, 'photo.jpg'), 'photo.jpg')));

    step(4, 'A file over the per-file limit', 'Refused with PT413 (HTTP 413 through PostgREST).');
    showError(await refused(() => ingest(file(50 * KiB, 'scan.tiff'), 'scan.tiff')));

    step(5, 'Storage goes down during an upload', 'The source is recorded as pending and its bytes wait in the upload queue.');
    storage.mode = 'down';
    const queued = await ingest(file(10 * KiB, 'receipt.png'), 'receipt.png');
    if (queued.status !== 'pending_retry') throw new Error(`expected pending_retry, got ${queued.status}`);
    let j = await job(queued.jobId);
    print(`   pending_retry: job ${queued.jobId}, retry 1 due in ${j.due_in}`);
    const delays = await pool.query<{ n: number; base: string }>(
      `SELECT n, (30 * 2 ^ (n - 1))::int || ' s' AS base FROM generate_series(1, 5) AS n`,
    );
    print(`   backoff: ${delays.rows.map((r) => `retry ${r.n} after ${r.base}`).join(', ')} (+0-10 % jitter)`);

    step(6, 'Retry 1 fails: storage is still down', 'Instead of waiting 30 s, the demo asks for the retry now (retry_upload_job_now(), as an operator may); the worker retries.');
    await retryNow(queued.jobId);
    await drainOnce();
    j = await job(queued.jobId);
    print(`   job ${j.status}, retries so far ${j.retry_count}, retry 2 due in ${j.due_in}; last error: ${j.error_message}`);

    step(7, 'Storage is back: retry 2 stores the object', 'Retry 2 is asked for now instead of in a minute; the worker stores the bytes and the queue forgets them.');
    storage.mode = 'up';
    await retryNow(queued.jobId);
    await drainOnce();
    j = await job(queued.jobId);
    const stored = await readFile(storage.inner.pathOf('sources', `${user}/${queued.contentHash}`));
    const src = await pool.query<{ storage_status: string }>('SELECT storage_status FROM public.sources WHERE id = $1', [queued.sourceId]);
    print(`   job ${j.status}; source ${src.rows[0]?.storage_status}; bytes still queued: ${j.has_bytes}`);
    print(`   stored object sha256 ${createHash('sha256').update(stored).digest('hex') === queued.contentHash ? 'matches' : 'DOES NOT match'} the source's content_hash`);

    step(8, 'Storage refuses a write for good (HTTP 403)', 'Not retryable: the job fails at once, its bytes are kept for `neotoma-ops requeue`.');
    storage.mode = 'forbidden';
    const refusedUpload = await ingest(file(5 * KiB, 'contract.docx'), 'contract.docx');
    if (refusedUpload.status !== 'pending_retry') throw new Error(`expected pending_retry, got ${refusedUpload.status}`);
    await retryNow(refusedUpload.jobId);
    await drainOnce();
    j = await job(refusedUpload.jobId);
    print(`   job ${refusedUpload.jobId} ${j.status} after ${j.retry_count} retry; bytes kept: ${j.has_bytes}; error: ${j.error_message}`);
    print(`   to retry it later: neotoma-ops requeue ${refusedUpload.jobId}`);

    step(9, 'More work waiting', 'One upload queued and already due, one held by a worker right now (as a live system would show).');
    storage.mode = 'down';
    const waiting = await ingest(file(2 * KiB, 'todo.txt'), 'todo.txt');
    const held = await ingest(file(2 * KiB, 'draft.md'), 'draft.md');
    if (waiting.status !== 'pending_retry' || held.status !== 'pending_retry') throw new Error('expected both uploads queued');
    // `held` alone is due when a worker claims: it is the one taken; then `waiting` is due too
    await retryNow(held.jobId);
    await pool.query(`SELECT * FROM public.claim_upload_jobs('demo-busy-worker', 1, interval '5 minutes')`);
    await retryNow(waiting.jobId);
    print(`   queued and due: ${waiting.jobId}; in progress: ${held.jobId}`);

    step(10, 'An interpretation with heartbeats', 'withHeartbeat() marks the run running, heartbeats while the work runs, then completes it.');
    const runSql = `INSERT INTO public.interpretation_runs (user_id, source_id, interpretation_config, status)
                    VALUES ($1, $2, '{"model":"demo"}', 'pending') RETURNING id`;
    const run1 = (await pool.query<{ id: string }>(runSql, [user, first.sourceId])).rows[0]!.id;
    const done = await withHeartbeat(pool, run1, async () => ({ observationsCreated: 3 }), { intervalMs: 200 });
    print(`   run ${run1} ${done.status} with ${done.observationsCreated} observations`);

    step(11, 'An interpretation that hangs', 'Its worker dies after starting it. Rather than wait out the run timeout, the demo starts it under the shortest one an operator may set (1 s); then the sweep pg_cron runs every 5 minutes fails it.');
    const run2 = (await pool.query<{ id: string }>(runSql, [user, first.sourceId])).rows[0]!.id;
    await waitUntil(pool, await startWithShortTimeout(pool, run2));
    const swept = await pool.query<{ n: number }>('SELECT public.cleanup_stale_interpretations() AS n');
    const r2 = await pool.query<{ status: string; error_message: string }>('SELECT status, error_message FROM public.interpretation_runs WHERE id = $1', [run2]);
    print(`   sweep failed ${swept.rows[0]?.n} run(s): run ${run2} is ${r2.rows[0]?.status}, "${r2.rows[0]?.error_message}"`);
    const afterRefund = await collectUsage(pool, user);
    print(`   its quota unit was given back: ${afterRefund.interpretations_used} of ${afterRefund.interpretations_limit} used`);

    step(12, 'The interpretation quota', 'One more run fits; the next is refused until the period resets.');
    await pool.query(runSql, [user, first.sourceId]);
    showError(await refused(() => pool.query(runSql, [user, first.sourceId])));

    step(13, 'neotoma-ops status', 'What an operator sees (also as JSON with --json, and as Prometheus metrics on /metrics).');
    print(renderStatus(await collectStatus(pool)));

    const metrics = await readOpsMetrics(pool);
    const value = (metric: string, labels: Record<string, string> = {}): number =>
      metrics.find((m) => m.metric === metric && Object.entries(labels).every(([k, v]) => m.labels[k] === v))?.value ?? 0;
    const expected: Array<[string, Record<string, string>]> = [
      ['upload_queue_jobs', { status: 'pending' }],
      ['upload_queue_jobs', { status: 'in_progress' }],
      ['upload_queue_jobs', { status: 'failed' }],
      ['upload_queue_jobs', { status: 'completed' }],
      ['upload_queue_oldest_due_age_seconds', {}],
      ['upload_retries_total', {}],
      ['upload_retry_failures_total', {}],
      ['upload_terminal_failures_total', {}],
      ['interpretation_timeouts_total', {}],
      ['quota_rejections_total', { resource: 'storage' }],
      ['quota_rejections_total', { resource: 'interpretations' }],
      ['quota_rejections_total', { resource: 'file_size' }],
      ['storage_used_bytes', { plan: 'all' }],
      ['storage_users_at_or_over_ratio', { ratio: '0.8', resource: 'storage' }],
      ['storage_users_at_or_over_ratio', { ratio: '1.0', resource: 'interpretations' }],
    ];
    print('');
    print('── Metrics moved by this tour (ops_metrics())');
    const zero = expected.filter(([m, l]) => value(m, l) <= 0);
    for (const [m, l] of expected) {
      const labels = Object.entries(l).map(([k, v]) => `${k}=${v}`).join(',');
      print(`   ${value(m, l) > 0 ? 'ok  ' : 'ZERO'} ${`${m}${labels ? `{${labels}}` : ''}`.padEnd(70)} ${value(m, l)}`);
    }
    if (zero.length) throw new Error(`the demo expected non-zero metrics, these are zero: ${zero.map(([m]) => m).join(', ')}`);
    print('');
    print('Demo complete. Try: neotoma-ops status, neotoma-ops usage ' + user + ', neotoma-ops requeue ' + refusedUpload.jobId);
  } finally {
    if (options.foreignDatabase) {
      await removeDemoRows(pool, user).then(
        () => print(`Removed what the demo wrote for user ${user}.`),
        (err: unknown) => print(`Could not remove the demo user ${user}'s rows: ${(err as Error).message}`),
      );
      await rm(path.join(root, 'sources', user), { recursive: true, force: true });
    }
    await pool.end();
  }
}

/**
 * Starts the run under the shortest run timeout an operator may set (neotoma_ops.interpretation_settings.run_timeout,
 * 1 second), restored in the same transaction: no other run ever sees it. Returns the run's deadline.
 */
async function startWithShortTimeout(pool: ReturnType<typeof createPool>, runId: string): Promise<Date> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    const { rows } = await c.query<{ run_timeout: string }>(
      'SELECT run_timeout::text FROM neotoma_ops.interpretation_settings WHERE singleton FOR UPDATE',
    );
    const configured = rows[0]?.run_timeout;
    if (configured === undefined) {
      throw new OperationalError(
        'neotoma_ops.interpretation_settings has no row, so every run gets the built-in 10-minute timeout: put it back with ' +
          '"INSERT INTO neotoma_ops.interpretation_settings DEFAULT VALUES" and run the demo again.',
      );
    }
    await c.query(`UPDATE neotoma_ops.interpretation_settings SET run_timeout = interval '1 second' WHERE singleton`);
    const started = await c.query<{ timeout_at: Date }>('SELECT public.start_interpretation_run($1) AS timeout_at', [runId]);
    await c.query('UPDATE neotoma_ops.interpretation_settings SET run_timeout = $1::interval WHERE singleton', [configured]);
    await c.query('COMMIT');
    return started.rows[0]!.timeout_at;
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    c.release();
  }
}

/** Resolves once the database's clock has passed `moment` (its clock, not this machine's, decides staleness). */
async function waitUntil(pool: ReturnType<typeof createPool>, moment: Date): Promise<void> {
  const { rows } = await pool.query<{ ms: number }>(
    'SELECT greatest(0, ceil(extract(epoch FROM $1::timestamptz - clock_timestamp()) * 1000))::int AS ms',
    [moment],
  );
  await new Promise((resolve) => setTimeout(resolve, (rows[0]?.ms ?? 0) + 10));
}

/** Everything the demo wrote for its user, in one transaction (runs first: the foreign key has no cascade). */
async function removeDemoRows(pool: ReturnType<typeof createPool>, user: string): Promise<void> {
  const c = await pool.connect();
  try {
    await c.query('BEGIN');
    await c.query('DELETE FROM public.interpretation_runs WHERE user_id = $1', [user]);
    await c.query('DELETE FROM public.sources WHERE user_id = $1', [user]); // its upload jobs and bytes cascade
    await c.query('DELETE FROM public.usage_periods WHERE user_id = $1', [user]);
    await c.query('DELETE FROM public.storage_usage WHERE user_id = $1', [user]);
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    c.release();
  }
}
