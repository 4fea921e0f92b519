// One `migrate` at a time: a lease (a row of neotoma_ops.migrate_lock, renewed by a second connection) for the
// whole run. A row, not a session advisory lock: it works through a transaction-mode pooler (which hands each
// transaction to any server connection) and can never be left behind by a session that went away: a lease not
// renewed for LEASE_SECONDS passes to the next run.
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type pg from 'pg';
import { connect } from '../db/connect.js';
import { preflight } from '../db/preflight.js';
import { sleep } from './locks.js';

const MIGRATE_LOCK_KEY = 4_747_120_003; // transaction-level only: serializes creating the lease table
const LEASE_SECONDS = 120;
const LEASE_RENEW_MS = 20_000;

/** Takes the migrate lease, or says it is taken; the lease table is created first when missing. */
async function tryLease(client: pg.Client, holder: string): Promise<boolean> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATE_LOCK_KEY]);
    await client.query(`
      CREATE SCHEMA IF NOT EXISTS neotoma_ops;
      CREATE TABLE IF NOT EXISTS neotoma_ops.migrate_lock (
        singleton   boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
        holder      text        NOT NULL,
        acquired_at timestamptz NOT NULL DEFAULT now(),
        expires_at  timestamptz NOT NULL
      );
      ALTER TABLE neotoma_ops.migrate_lock ENABLE ROW LEVEL SECURITY;`);
    const { rows } = await client.query<{ holder: string }>(
      `INSERT INTO neotoma_ops.migrate_lock AS l (holder, expires_at) VALUES ($1, now() + make_interval(secs => $2))
       ON CONFLICT (singleton) DO UPDATE SET holder = EXCLUDED.holder, acquired_at = now(), expires_at = EXCLUDED.expires_at
        WHERE l.expires_at < now() OR l.holder = EXCLUDED.holder
       RETURNING holder`,
      [holder, LEASE_SECONDS],
    );
    await client.query('COMMIT');
    return rows.length === 1;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/**
 * Runs `fn` holding the lease, on a connection of its own; `side` is a second connection (it renews the lease,
 * and may write progress while `client` is busy with a long statement).
 */
export async function withMigrateLease<T>(
  databaseUrl: string,
  log: (line: string) => void,
  fn: (client: pg.Client, side: pg.Client) => Promise<T>,
): Promise<T> {
  const client = await connect(databaseUrl, { applicationName: 'neotoma-ops migrate' });
  // a migration's own RAISE NOTICE is for the operator; "does not exist, skipping" and the like are not
  client.on('notice', (n: { code?: string; message?: string }) => {
    if (n.code === '00000' && n.message && !/, skipping$/.test(n.message)) log(`notice: ${n.message}`);
  });
  const holder = `${os.hostname()}:${process.pid}:${randomUUID()}`;
  let side: pg.Client | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    await preflight(client);
    for (let waited = false; !(await tryLease(client, holder)); waited = true) {
      if (!waited) {
        log('waiting for another `neotoma-ops migrate` to finish (its lease is the row of neotoma_ops.migrate_lock; ' +
          `the lease of a run that was killed expires ${LEASE_SECONDS} s after its last renewal)`);
      }
      await sleep(500);
    }
    side = await connect(databaseUrl, { applicationName: 'neotoma-ops migrate lease' });
    side.on('error', () => undefined);
    const s = side;
    timer = setInterval(() => {
      s.query(`UPDATE neotoma_ops.migrate_lock SET expires_at = now() + make_interval(secs => $2) WHERE holder = $1`,
        [holder, LEASE_SECONDS]).catch(() => undefined);
    }, LEASE_RENEW_MS);
    try {
      return await fn(client, s);
    } finally {
      clearInterval(timer);
      await client.query('DELETE FROM neotoma_ops.migrate_lock WHERE holder = $1', [holder]).catch(() => undefined);
    }
  } finally {
    await side?.end().catch(() => undefined);
    await client.end().catch(() => undefined);
  }
}

/** The lease table and the schema, once nothing else is in it (another run may have created it again: then kept). */
export async function dropLeaseTable(databaseUrl: string): Promise<void> {
  const client = await connect(databaseUrl, { applicationName: 'neotoma-ops migrate' });
  try {
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATE_LOCK_KEY]);
    const { rows } = await client.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'neotoma_ops' AND c.relname <> 'migrate_lock' AND c.relname NOT LIKE 'migrate_lock%'`,
    );
    const lease = await client.query<{ n: number }>(`SELECT count(*)::int AS n FROM neotoma_ops.migrate_lock WHERE expires_at > now()`)
      .catch(() => ({ rows: [{ n: 0 }] }));
    if ((rows[0]?.n ?? 1) === 0 && (lease.rows[0]?.n ?? 1) === 0) {
      await client.query('DROP TABLE IF EXISTS neotoma_ops.migrate_lock');
      await client.query(`DO $$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_namespace n ON d.refobjid = n.oid
                        WHERE n.nspname = 'neotoma_ops' AND d.refclassid = 'pg_catalog.pg_namespace'::regclass) THEN
          DROP SCHEMA IF EXISTS neotoma_ops;
        END IF;
      END $$`);
    }
    await client.query('COMMIT');
  } catch {
    await client.query('ROLLBACK').catch(() => undefined);
  } finally {
    await client.end().catch(() => undefined);
  }
}
