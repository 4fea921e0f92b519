import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type pg from 'pg';
import { sha256 } from '../upload.js';
import { RUN_TIMEOUT_SECONDS, type Invariant } from './config.js';
import type { SoakContext } from './context.js';
import { readWriteLog, type FaultFiles } from './faults.js';

export interface JobCounts {
  total: number;
  completed: number;
  failed: number;
  failed_exhausted: number;
  failed_permanent: number;
  other: number;
  bad_completed: number;
  bad_failed: number;
  sum_retries: number;
  sources: number;
}

/** The invariants, and what the report shows of the final state they were checked on. */
export interface Checked {
  invariants: Invariant[];
  /** Storage writes by outcome (producer + workers). */
  faults: Record<string, number>;
  jobs: JobCounts;
  /** neotoma_ops.upload_queue_counter_totals(), by counter. */
  counters: Record<string, number>;
  /** Keys stored more than once. */
  rewritten: number;
  /** Temporary files left by killed writers. */
  tmpLeft: number;
  runs: { timed_out: number; active: number; completed: number };
  outageSeconds: number;
}

/** Checks every invariant on the drained, stopped system (docs/reliability.md, "Soak", lists them). */
export async function checkInvariants(
  ctx: SoakContext,
  files: FaultFiles,
  tickMs: number,
  stopped: { workers: number; badExits: number; summaries: boolean },
): Promise<Checked> {
  const { f, pool, unexpected } = ctx;
  const invariants: Invariant[] = [];
  const check = (name: string, held: boolean, detail: string): void => {
    invariants.push({ name, held, detail });
  };
  const q = async <R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<R[]> => (await pool.query<R>(sql, params)).rows;

  const [jobs] = await q<JobCounts>(
    `SELECT count(*)::int AS total,
            count(*) FILTER (WHERE status = 'completed')::int AS completed,
            count(*) FILTER (WHERE status = 'failed')::int AS failed,
            count(*) FILTER (WHERE status = 'failed' AND retry_count = max_retries)::int AS failed_exhausted,
            count(*) FILTER (WHERE status = 'failed' AND retry_count < max_retries AND error_message ~ ' failed: 4[0-9][0-9][ :]')::int AS failed_permanent,
            count(*) FILTER (WHERE status NOT IN ('completed', 'failed'))::int AS other,
            count(*) FILTER (WHERE status = 'completed' AND retry_count >= max_retries)::int AS bad_completed,
            count(*) FILTER (WHERE status = 'failed' AND NOT (retry_count = max_retries
                               OR (retry_count < max_retries AND error_message ~ ' failed: 4[0-9][0-9][ :]')))::int AS bad_failed,
            coalesce(sum(retry_count), 0)::int AS sum_retries,
            count(DISTINCT source_id)::int AS sources
       FROM public.upload_queue`,
  );
  const counters = Object.fromEntries(
    (await q<{ counter: string; value: string }>('SELECT counter, value FROM neotoma_ops.upload_queue_counter_totals()')).map((r) => [r.counter, Number(r.value)]),
  );
  check(
    'every enqueued job is completed or failed',
    jobs!.total > 0 && jobs!.other === 0,
    `${jobs!.total} jobs: ${jobs!.completed} completed, ${jobs!.failed} failed, ${jobs!.other} other`,
  );
  check(
    'failed jobs after exactly their allowed attempts (retry_count = max_retries, or a non-retryable error)',
    jobs!.bad_failed === 0 && jobs!.bad_completed === 0,
    `${jobs!.failed_exhausted} exhausted, ${jobs!.failed_permanent} non-retryable, ${jobs!.bad_failed} otherwise; ${jobs!.bad_completed} completed after max_retries`,
  );
  check(
    'every attempt accounted for: retries started = retry failures + completions; failures = SUM(retry_count)',
    counters.upload_retries_total === counters.upload_retry_failures_total! + jobs!.completed &&
      counters.upload_retry_failures_total === jobs!.sum_retries,
    `claims ${counters.upload_retries_total}, retry failures ${counters.upload_retry_failures_total}, completions ${jobs!.completed}, SUM(retry_count) ${jobs!.sum_retries}`,
  );
  check(
    'no job completed twice (completion counter = completed jobs = distinct sources; one job per source)',
    counters.upload_completed_total === jobs!.completed && jobs!.sources === jobs!.total && counters.upload_enqueued_total === jobs!.total,
    `completed_total ${counters.upload_completed_total}, completed jobs ${jobs!.completed}, jobs ${jobs!.total}, distinct sources ${jobs!.sources}, enqueued_total ${counters.upload_enqueued_total}`,
  );

  const [status] = await q<{ mismatched: number; pending: number }>(
    `SELECT count(*) FILTER (WHERE (j.status = 'completed' AND s.storage_status <> 'uploaded')
                                OR (j.status = 'failed' AND s.storage_status <> 'failed'))::int AS mismatched,
            (SELECT count(*) FROM public.sources WHERE storage_status = 'pending')::int AS pending
       FROM public.upload_queue AS j JOIN public.sources AS s ON s.id = j.source_id`,
  );
  check(
    'source status follows its job (completed → uploaded, failed → failed; none left pending)',
    status!.mismatched === 0 && status!.pending === 0,
    `${status!.mismatched} mismatched, ${status!.pending} pending`,
  );

  // Objects: every uploaded source is stored whole; every stored write of a completed job was logged.
  const uploaded = await q<{ storage_url: string; content_hash: string; file_size: string }>(
    `SELECT storage_url, content_hash, file_size FROM public.sources WHERE storage_status = 'uploaded'`,
  );
  let missing = 0;
  let wrong = 0;
  for (const s of uploaded) {
    const file = path.join(files.fsRoot, 'sources', ...s.storage_url.split('/'));
    if (!existsSync(file)) {
      missing++;
      continue;
    }
    const bytes = await readFile(file);
    if (sha256(bytes) !== s.content_hash || bytes.length !== Number(s.file_size)) wrong++;
  }
  check(
    "every uploaded source's object exists with the right bytes (sha256 = content_hash)",
    uploaded.length > 0 && missing === 0 && wrong === 0,
    `${uploaded.length} objects checked, ${missing} missing, ${wrong} wrong`,
  );
  const { faults, storedWrites } = await readWriteLog(files.logFile);
  const completedKeys = await q<{ key: string }>(`SELECT bucket || '/' || storage_path AS key FROM public.upload_queue WHERE status = 'completed'`);
  const unlogged = completedKeys.filter((k) => !storedWrites.has(k.key)).length;
  const rewritten = [...storedWrites.values()].filter((n) => n > 1).length;
  check(
    'every completed job was stored by a logged write',
    unlogged === 0,
    `${completedKeys.length} completed keys, ${unlogged} without a stored write; ${rewritten} keys stored more than once (harmless: content-addressed)`,
  );
  const tmpLeft = await countTmp(path.join(files.fsRoot, 'sources'));

  const [usage] = await q<{ drift: number; over: number; users: number }>(
    `SELECT count(*) FILTER (WHERE u.total_bytes <> coalesce(s.bytes, 0) OR u.total_sources <> coalesce(s.n, 0))::int AS drift,
            count(*) FILTER (WHERE u.total_bytes > coalesce(u.storage_limit_bytes_override, p.storage_limit_bytes))::int AS over,
            count(*)::int AS users
       FROM public.storage_usage AS u JOIN public.plans AS p ON p.id = u.plan_id
       LEFT JOIN (SELECT user_id, sum(file_size) AS bytes, count(*) AS n FROM public.sources GROUP BY user_id) AS s ON s.user_id = u.user_id`,
  );
  check(
    'per user total_bytes = SUM(file_size) and total_sources = COUNT, at the end and at every sample',
    usage!.drift === 0 && f.usageDriftSamples === 0 && f.samples > 0,
    `${usage!.users} users, ${usage!.drift} drifted at the end, ${f.usageDriftSamples} of ${f.samples} samples with drift`,
  );
  check(
    'no user over a storage or interpretation limit at any sampled moment',
    usage!.over === 0 && f.overLimitSamples === 0,
    `${f.overLimitSamples} of ${f.samples} samples over, ${usage!.over} over at the end`,
  );

  const [runs] = await q<{ timed_out: number; active: number; completed: number }>(
    `SELECT count(*) FILTER (WHERE status = 'failed' AND error_message = 'Timeout - no heartbeat')::int AS timed_out,
            count(*) FILTER (WHERE status IN ('pending', 'running'))::int AS active,
            count(*) FILTER (WHERE status = 'completed')::int AS completed
       FROM public.interpretation_runs`,
  );
  const sweepBound = tickMs / 1000 + 1.5;
  check(
    'no interpretation left pending/running past its timeout plus one sweep',
    runs!.active === 0 && f.maxOverdueSeconds <= sweepBound && runs!.timed_out >= f.runsAbandoned,
    `max overdue at a sample ${f.maxOverdueSeconds.toFixed(2)} s (bound ${sweepBound} s); ${runs!.timed_out} timed out ` +
      `(${f.runsAbandoned} abandoned on purpose), ${runs!.active} active at the end`,
  );
  const outageSeconds = ctx.restartWindows.reduce((n, [a, b]) => n + (b - a) / 1000, 0);
  const lostRuns = f.runsStoppedBySweep + f.runsInterrupted;
  check(
    'every heartbeated run completed (none lost to the restart unless the outage outlasted two heartbeats)',
    lostRuns === 0 || outageSeconds > (RUN_TIMEOUT_SECONDS * 2) / 3,
    `${f.runsCompleted} completed, ${lostRuns} lost, outage ${outageSeconds.toFixed(1)} s`,
  );
  check(
    'no error other than the expected quota errors reached the producer',
    unexpected.length === 0,
    unexpected.length === 0 ? 'none' : unexpected.slice(0, 5).join(' | '),
  );
  check(
    'every worker stopped gracefully at the end (exit 0, summary line)',
    stopped.badExits === 0 && stopped.summaries,
    `${stopped.workers} workers, ${stopped.badExits} bad exits`,
  );

  return { invariants, faults, jobs: jobs!, counters, rewritten, tmpLeft, runs: runs!, outageSeconds };
}

async function countTmp(dir: string): Promise<number> {
  let n = 0;
  for (const user of await readdir(dir).catch(() => [] as string[])) {
    for (const f of await readdir(path.join(dir, user)).catch(() => [] as string[])) if (f.endsWith('.tmp')) n++;
  }
  return n;
}
