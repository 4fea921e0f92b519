// Deferred steps: work a migration declares that must not run inside its transaction (CREATE INDEX CONCURRENTLY,
// VALIDATE CONSTRAINT, batched backfills). Each runs on its own after every migration and SQL file, says how far it
// has come at least every PROGRESS_EVERY_MS (in the log and in neotoma_ops.deferred_steps, which `migrate status`
// shows from another terminal), and resumes where it stopped when a run was interrupted.
import type pg from 'pg';
import { OperationalError } from '../errors.js';
import { DEFERRED_LOCK_TIMEOUT_MS, errorCode, inTransaction, withLockRetry } from './locks.js';

const PROGRESS_EVERY_MS = 5000;

export interface DeferredStep {
  migration: string;
  position: number;
  description: string;
  statement: string;
  repeat: boolean;
  index_name: string | null;
  cursor: string | null;
  total_statement: string | null;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** How far a batch's cursor is through its keys: a random uuid cursor is that fraction of the uuid space. */
function uuidFraction(cursor: string): number {
  return parseInt(cursor.replace(/-/g, '').slice(0, 12), 16) / 2 ** 48;
}

const count = (n: number): string => Math.round(n).toLocaleString('en-US');

function duration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  if (seconds < 90) return `${Math.max(1, Math.round(seconds))} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

/** "N of TOTAL (P %), R/s, about T left" from units done so far and the total, when there is one. */
function describe(done: number, total: number | null, elapsedS: number, unit: string): string {
  const rate = elapsedS > 0 ? done / elapsedS : 0;
  if (total === null || total <= 0) return `${count(done)} ${unit} done, ${count(rate)}/s, ${duration(elapsedS)} so far`;
  const pct = Math.min(100, (100 * done) / total);
  const left = rate > 0 ? (total - done) / rate : Infinity;
  return `${count(done)} of ${count(total)} ${unit} (${pct.toFixed(0)} %), ${count(rate)}/s, about ${duration(left)} left`;
}

/** Runs the deferred steps not done yet, in migration order; see the file's header. */
export async function runDeferredSteps(
  client: pg.Client,
  side: pg.Client,
  log: (line: string) => void,
  record: (step: DeferredStep, run: () => Promise<void>) => Promise<void>,
): Promise<{ done: string[]; warnings: string[] }> {
  const { rows: steps } = await client.query<DeferredStep>(
    `SELECT migration, position, description, statement, repeat, index_name, cursor, total_statement
       FROM neotoma_ops.deferred_steps WHERE completed_at IS NULL ORDER BY migration, position`,
  );
  const done: string[] = [];
  const warnings: string[] = [];
  for (const step of steps) {
    const resumes = step.repeat && step.cursor !== null && /\$1\b/.test(step.statement);
    log(`running deferred step: ${step.description}${resumes ? ` (resuming after ${step.cursor}, where an earlier run stopped)` : ''}`);
    try {
      await withLockRetry(client, step.description, () => record(step, () => runStep(client, side, step, log)), log);
    } catch (err) {
      const message = (err as { message?: string }).message ?? String(err);
      await markStep(client, step, { error: message, sqlstate: errorCode(err) ?? null });
      if (errorCode(err) === '23514') {
        warnings.push(message);
        continue;
      }
      if (err instanceof OperationalError) throw err;
      throw new OperationalError(
        `Deferred step "${step.description}" (migration ${step.migration}) failed: ${message}. Every migration is ` +
          'applied; fix the cause and run `neotoma-ops migrate up` again to finish this step.',
        { cause: err },
      );
    }
    await markStep(client, step, { done: true });
    done.push(step.description);
  }
  return { done, warnings };
}

/** Marks a step done, or records its error or cursor; always outside any transaction of the step itself. */
async function markStep(
  client: pg.Client,
  step: DeferredStep,
  fields: { done?: boolean; cursor?: string | null; error?: string | null; sqlstate?: string | null },
): Promise<void> {
  await client.query(
    `UPDATE neotoma_ops.deferred_steps
        SET completed_at = CASE WHEN $3 THEN now() END, cursor = $4, last_error = $5, last_sqlstate = $6,
            attempts = attempts + 1, progress = CASE WHEN $3 THEN NULL ELSE progress END
      WHERE migration = $1 AND position = $2`,
    [step.migration, step.position, fields.done ?? false, fields.cursor ?? step.cursor, fields.error ?? null, fields.sqlstate ?? null],
  );
}

/** Says how far the step is, every PROGRESS_EVERY_MS, in the log and (through the side connection) in the table. */
function progressReporter(side: pg.Client, step: DeferredStep, log: (line: string) => void, read: () => Promise<string>): () => void {
  const started = Date.now();
  let busy = false;
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void read()
      .then(async (p) => {
        const line = `${p} (${duration((Date.now() - started) / 1000)} running)`;
        log(`deferred step "${step.description}": ${line}`);
        await side.query(
          `UPDATE neotoma_ops.deferred_steps SET progress = $3, progress_at = now() WHERE migration = $1 AND position = $2`,
          [step.migration, step.position, line],
        );
      })
      .catch(() => undefined)
      .finally(() => (busy = false));
  }, PROGRESS_EVERY_MS);
  return () => clearInterval(timer);
}

async function runStep(client: pg.Client, side: pg.Client, step: DeferredStep, log: (line: string) => void): Promise<void> {
  if (step.index_name) {
    const { rows } = await client.query<{ valid: boolean | null; name: string | null }>(
      `SELECT i.indisvalid AS valid, to_regclass($1)::text AS name
         FROM (SELECT 1) one LEFT JOIN pg_catalog.pg_index i ON i.indexrelid = to_regclass($1)`,
      [step.index_name],
    );
    const found = rows[0];
    if (found?.valid === false && found.name) {
      log(`${step.description}: dropping the invalid index an interrupted build left, then building it again`);
      await client.query(`DROP INDEX CONCURRENTLY IF EXISTS ${found.name}`);
    }
    const pid = (await client.query<{ pid: number }>('SELECT pg_catalog.pg_backend_pid() AS pid')).rows[0]!.pid;
    const stop = progressReporter(side, step, log, async () => {
      const p = (await side.query<{ phase: string; done: string; total: string }>(
        `SELECT phase, blocks_done::text AS done, blocks_total::text AS total FROM pg_catalog.pg_stat_progress_create_index WHERE pid = $1`,
        [pid],
      )).rows[0];
      return p ? `${p.phase}: ${describe(Number(p.done), Number(p.total), 0, 'blocks').replace(/, 0\/s.*$/, '')}` : 'waiting to start';
    });
    try {
      // CREATE INDEX CONCURRENTLY runs outside any transaction block; it takes no lock writers queue behind
      await client.query(step.statement);
    } finally {
      stop();
    }
    return;
  }
  if (!step.repeat) {
    const stop = progressReporter(side, step, log, async () => 'working (this statement does not report how far it is)');
    try {
      await inTransaction(client, DEFERRED_LOCK_TIMEOUT_MS, () => client.query(step.statement));
    } finally {
      stop();
    }
    return;
  }
  // batches: each its own short transaction; the cursor is kept after each, so an interrupted run resumes there
  const total = step.total_statement
    ? Number(Object.values((await client.query<Record<string, string>>(step.total_statement)).rows[0] ?? {})[0] ?? NaN)
    : null;
  const started = Date.now();
  let cursor = step.cursor;
  let done = 0;
  let batches = 0;
  const takesCursor = /\$1\b/.test(step.statement);
  const known = total !== null && Number.isFinite(total) ? total : null;
  const stop = progressReporter(side, step, log, async () => {
    // a batch returns a key cursor (a uuid: its place in the key space says how far; any other: one batch more), or
    // how many rows it did
    if (!takesCursor) return describe(done, known, (Date.now() - started) / 1000, 'rows');
    if (cursor && UUID.test(cursor) && known !== null) return describe(uuidFraction(cursor) * known, known, (Date.now() - started) / 1000, 'rows');
    return describe(batches, known, (Date.now() - started) / 1000, 'batches');
  });
  try {
    for (;;) {
      const { rows } = await inTransaction(client, DEFERRED_LOCK_TIMEOUT_MS, () =>
        client.query<Record<string, string | null>>(step.statement, takesCursor ? [cursor] : []),
      );
      const next = rows[0] ? Object.values(rows[0])[0] ?? null : null;
      if (next === null) return;
      batches += 1;
      if (!takesCursor && Number.isFinite(Number(next))) done += Number(next);
      if (takesCursor) {
        cursor = next;
        await markStep(client, step, { cursor });
      }
    }
  } finally {
    stop();
  }
}
