import pg from 'pg';
import { OperationalError } from '../errors.js';

export interface ConnectionTarget {
  host: string;
  port: number;
  database: string;
  user: string;
}

/** Host, port, database and user of a postgres:// URL, for messages (never the password). */
export function describeTarget(databaseUrl: string): ConnectionTarget {
  let url: URL;
  try {
    url = new URL(databaseUrl);
  } catch {
    throw new OperationalError(
      'DATABASE_URL is not a valid URL. Expected postgres://USER:PASSWORD@HOST:PORT/DATABASE; ' +
        'unset it to use the embedded local database.',
    );
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new OperationalError(
      `DATABASE_URL uses the scheme "${url.protocol.replace(/:$/, '')}"; expected postgres://USER:PASSWORD@HOST:PORT/DATABASE.`,
    );
  }
  return {
    host: url.hostname || 'localhost',
    port: url.port ? Number(url.port) : 5432,
    database: decodeURIComponent(url.pathname.replace(/^\//, '')) || decodeURIComponent(url.username) || 'postgres',
    user: decodeURIComponent(url.username) || 'postgres',
  };
}

function where(t: ConnectionTarget): string {
  return `database "${t.database}" on ${t.host}:${t.port}`;
}

/** Turns a connection failure into a message that names the target, the cause and the fix. */
export function explainConnectionError(err: unknown, databaseUrl: string): OperationalError {
  const t = describeTarget(databaseUrl);
  const e = err as { code?: string; message?: string };
  const cause = e.message ?? String(err);
  switch (e.code) {
    case 'ECONNREFUSED':
      return new OperationalError(
        `Cannot connect to ${where(t)}: connection refused. Start PostgreSQL there or correct the host/port in ` +
          'DATABASE_URL (unset DATABASE_URL to use the embedded local database).',
        { cause: err },
      );
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new OperationalError(
        `Cannot connect to ${where(t)}: the host name "${t.host}" does not resolve. Correct the host in DATABASE_URL.`,
        { cause: err },
      );
    case 'ETIMEDOUT':
      return new OperationalError(
        `Cannot connect to ${where(t)}: the connection timed out. Check the host, port and any firewall.`,
        { cause: err },
      );
    case '28P01':
      return new OperationalError(
        `Cannot connect to ${where(t)}: password authentication failed for user "${t.user}". ` +
          'Correct the user name or password in DATABASE_URL.',
        { cause: err },
      );
    case '28000':
      return new OperationalError(
        `Cannot connect to ${where(t)} as user "${t.user}": the server refused the login (${cause}). ` +
          'Allow it in pg_hba.conf or use another user in DATABASE_URL.',
        { cause: err },
      );
    case '3D000':
      return new OperationalError(
        `Cannot connect to ${where(t)}: database "${t.database}" does not exist. Create it ` +
          `(createdb -h ${t.host} -p ${t.port} -U ${t.user} ${t.database}) or correct the database name in DATABASE_URL.`,
        { cause: err },
      );
    default:
      if (/timeout/i.test(cause)) {
        return new OperationalError(
          `Cannot connect to ${where(t)}: the connection timed out. Check the host, port and any firewall.`,
          { cause: err },
        );
      }
      return new OperationalError(`Cannot connect to ${where(t)}: ${cause}.`, { cause: err });
  }
}

export interface ConnectOptions {
  applicationName?: string;
  connectTimeoutMs?: number;
}

/** A connected client, or an OperationalError that says what to fix. */
export async function connect(databaseUrl: string, options: ConnectOptions = {}): Promise<pg.Client> {
  describeTarget(databaseUrl);
  const client = new pg.Client({
    connectionString: databaseUrl,
    application_name: options.applicationName ?? 'neotoma-ops',
    connectionTimeoutMillis: options.connectTimeoutMs ?? 10_000,
  });
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => undefined);
    throw explainConnectionError(err, databaseUrl);
  }
  // An idle client whose server goes away emits 'error'; the next query reports it instead.
  client.on('error', () => undefined);
  return client;
}

/** A pool for long-running processes; connection errors surface on the first query. */
export function createPool(databaseUrl: string, max = 10, applicationName = 'neotoma-ops'): pg.Pool {
  describeTarget(databaseUrl);
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max,
    application_name: applicationName,
    connectionTimeoutMillis: 10_000,
  });
  pool.on('error', () => undefined);
  return pool;
}
