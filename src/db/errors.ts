/**
 * How a database call failed, decided in one place: whether the connection was lost (retrying may get an
 * answer) and whether the database answered (retrying the same call will not help). Used by the upload worker,
 * withHeartbeat and the soak test.
 */

/** SQLSTATEs of a lost connection: class 08 (connection exception) and 57P01-57P03 (admin shutdown, crash
 *  shutdown, cannot connect now), which a restart or a failover sends. */
const LOST_SQLSTATE = /^(08|57P0[1-3])/;
/** Node socket errors: the server is unreachable or went away in the middle of a call. */
const LOST_SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT']);
/** Messages of pg and pg-pool, whose errors carry no code, and of a server going down. */
const LOST_MESSAGE =
  /Connection terminated|Connection ended|connection (is )?closed|terminating connection|the database system is (shutting down|starting up)|timeout exceeded when trying to connect/i;
/** pg's answer to every query on a client whose connection broke earlier, or that was closed. */
const BROKEN_CLIENT_MESSAGE = /not queryable/i;
/** SQLSTATE classes that are not a final answer: 08 connection exception, 57 operator intervention,
 *  53 insufficient resources, 40 transaction rollback (serialization failure, deadlock). */
const TRANSIENT_CLASSES = /^(08|57|53|40)/;

/** The error's `code`: a SQLSTATE from the server (`23505`) or a node system error code (`ECONNRESET`). */
export function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** The error's message; a thrown string is its own message. */
function messageOf(err: unknown): string {
  if (typeof err === 'string') return err;
  const message = (err as { message?: unknown } | null)?.message;
  return typeof message === 'string' ? message : '';
}

/**
 * True when the call got no answer from the database: the connection was lost or refused, or the server is
 * shutting down or starting up. The call may or may not have run, and the same call may succeed on a new
 * connection (a pool hands one out), so callers retry it. A broken client is not included: see isBrokenClient.
 */
export function isConnectionLost(err: unknown): boolean {
  const message = messageOf(err);
  if (BROKEN_CLIENT_MESSAGE.test(message)) return false;
  const code = errorCode(err) ?? '';
  return LOST_SQLSTATE.test(code) || LOST_SOCKET_CODES.has(code) || LOST_MESSAGE.test(message);
}

/**
 * True when pg refused the query because its client had already lost its connection (or was closed): that
 * client answers every later query the same way, so retrying on it is pointless; only a new client helps.
 */
export function isBrokenClient(err: unknown): boolean {
  return BROKEN_CLIENT_MESSAGE.test(messageOf(err));
}

/**
 * True for an error the database answered with: a SQLSTATE outside the classes of lost connections (08),
 * shutdown / admin intervention (57), insufficient resources (53) and serialization / deadlock (40). Retrying
 * the same call will not help. Errors without a SQLSTATE (lost sockets, timeouts) are never final; EPIPE is
 * named because it has a SQLSTATE's shape.
 */
export function isFinalDatabaseAnswer(err: unknown): boolean {
  const sqlState = errorCode(err);
  return (
    sqlState !== undefined && /^[0-9A-Z]{5}$/.test(sqlState) && !TRANSIENT_CLASSES.test(sqlState) && !LOST_SOCKET_CODES.has(sqlState)
  );
}
