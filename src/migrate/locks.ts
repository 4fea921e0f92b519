// How the runner takes locks on a live database: every transaction with a short lock_timeout (a writer queued
// behind a lock request waits at most that long), tried again while a lock is not available.
import type pg from 'pg';
import { OperationalError } from '../errors.js';

/** Migrations and SQL files take their table locks with this lock_timeout, in ms. */
export const DEFAULT_LOCK_TIMEOUT_MS = 500;
/** Deferred steps take only locks that writers do not queue behind (index builds, validation): wait longer. */
export const DEFERRED_LOCK_TIMEOUT_MS = 60_000;
const LOCK_ATTEMPTS = 40;
const RETRYABLE = new Set(['55P03', '40P01']); // lock_not_available, deadlock_detected

export function errorCode(err: unknown): string | undefined {
  const e = err as { code?: string; cause?: { code?: string } } | null;
  return e?.code ?? e?.cause?.code;
}

export function isLockFailure(err: unknown): boolean {
  return RETRYABLE.has(errorCode(err) ?? '');
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * What every transaction of a run starts with: its lock_timeout, and no statement_timeout (a role default, as
 * Supabase sets some, must not cut a long backfill short). SET LOCAL: through a transaction-mode pooler a session
 * SET would stay behind on a server connection that other clients get next.
 */
export function transactionSettings(lockTimeoutMs: number): string {
  return `SET LOCAL lock_timeout = ${Math.max(1, Math.trunc(lockTimeoutMs))}; SET LOCAL statement_timeout = 0`;
}

/** `fn` in a transaction of its own that starts with the run's settings and the given lock_timeout. */
export async function inTransaction<T>(client: pg.Client, lockTimeoutMs: number, fn: () => Promise<T>): Promise<T> {
  await client.query('BEGIN');
  try {
    await client.query(transactionSettings(lockTimeoutMs));
    const result = await fn();
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/** Sessions with the oldest open transactions: what keeps a lock from being granted. */
async function describeBlockers(client: pg.Client): Promise<string> {
  const { rows } = await client.query<{ pid: number; app: string; state: string; age: string; query: string }>(
    `SELECT pid, coalesce(nullif(application_name, ''), '?') AS app, coalesce(state, '?') AS state,
            date_trunc('second', now() - xact_start)::text AS age, left(query, 80) AS query
       FROM pg_catalog.pg_stat_activity
      WHERE xact_start IS NOT NULL AND pid <> pg_catalog.pg_backend_pid() AND datname = current_database()
      ORDER BY xact_start LIMIT 5`,
  );
  if (rows.length === 0) return 'no other open transaction was seen';
  return rows.map((r) => `pid ${r.pid} (${r.app}, ${r.state}, open ${r.age}: ${r.query})`).join('; ');
}

/**
 * Runs `attempt` again while it fails for want of a lock (lock_timeout) or in a deadlock: each failure rolled
 * back its own transaction, so trying again is safe. Gives up with a paragraph naming what holds the locks.
 */
export async function withLockRetry<T>(client: pg.Client, what: string, attempt: () => Promise<T>, log: (line: string) => void): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      if (!isLockFailure(err)) throw err;
      if (n >= LOCK_ATTEMPTS) {
        throw new OperationalError(
          `${what}: could not take its table locks in ${LOCK_ATTEMPTS} tries (lock_timeout each time, so writers never ` +
            `waited long behind it). Long transactions hold them: ${await describeBlockers(client)}. ` +
            'Let them finish (or end them), then run `neotoma-ops migrate up` again; it resumes where it stopped.',
          { cause: err },
        );
      }
      log(`${what}: lock not available (${errorCode(err)}), trying again (${n}/${LOCK_ATTEMPTS})`);
      await sleep(Math.min(250 * n, 2000));
    }
  }
}
