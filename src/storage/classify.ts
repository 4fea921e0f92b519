import { StorageError } from './types.js';

/** Socket and DNS failures: the service may answer on the next try. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
]);

/** Local file-system failures that a later attempt can get past (disk full, too many open files, I/O error). */
const TRANSIENT_FS_CODES = new Set(['ENOSPC', 'EDQUOT', 'EMFILE', 'ENFILE', 'EIO', 'EAGAIN', 'EBUSY', 'EINTR']);

/** Local file-system failures that need an operator (permissions, read-only, path is not a folder). */
const PERMANENT_FS_CODES = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'EISDIR', 'ENAMETOOLONG', 'EINVAL']);

/** 5xx, 429 (rate limited) and 408 (request timeout) are worth retrying; every other 4xx is not. */
export function isRetryableStatus(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

interface ErrorLike {
  name?: unknown;
  code?: unknown;
  status?: unknown;
  statusCode?: unknown;
  $metadata?: { httpStatusCode?: unknown };
  cause?: unknown;
}

function httpStatus(e: ErrorLike): number | undefined {
  for (const v of [e.$metadata?.httpStatusCode, e.status, e.statusCode]) {
    const n = typeof v === 'string' ? Number(v) : v;
    if (typeof n === 'number' && Number.isInteger(n) && n >= 100 && n <= 599) return n;
  }
  return undefined;
}

function errorCode(e: ErrorLike): string | undefined {
  if (typeof e.code === 'string') return e.code;
  const cause = e.cause as ErrorLike | undefined;
  if (cause && typeof cause === 'object' && typeof cause.code === 'string') return cause.code;
  return undefined;
}

/**
 * Whether a failed write should be tried again: network errors, timeouts, aborts, 5xx, 429 → yes;
 * other 4xx and permission errors → no. Anything unknown is retried (the bytes stay in the queue and the
 * retry count is bounded, so retrying is the safe side).
 */
export function isRetryable(err: unknown): boolean {
  if (err instanceof StorageError) return err.retryable;
  if (err === null || typeof err !== 'object') return true;
  const e = err as ErrorLike;
  const status = httpStatus(e);
  if (status !== undefined && status >= 400) return isRetryableStatus(status);
  if (e.name === 'AbortError' || e.name === 'TimeoutError') return true;
  const code = errorCode(e);
  if (code !== undefined) {
    if (NETWORK_CODES.has(code) || TRANSIENT_FS_CODES.has(code)) return true;
    if (PERMANENT_FS_CODES.has(code)) return false;
  }
  return true;
}

/** `503 DatabaseReadOnly: message`: the status and code a reader needs first, then what the service said. */
export function describeFailure(status: number | undefined, code: string | undefined, detail: string): string {
  const head = [status, code].filter((p) => p !== undefined && p !== '').join(' ');
  return head ? `${head}: ${detail}` : detail;
}

/** Wraps any failure of `backend` into a classified StorageError (kept as is when it already is one). */
export function toStorageError(err: unknown, backend: string, what: string): StorageError {
  if (err instanceof StorageError) return err;
  const e = (err ?? {}) as ErrorLike & { message?: unknown };
  const status = httpStatus(e);
  const code = errorCode(e);
  const detail = typeof e.message === 'string' && e.message ? e.message : String(err);
  return new StorageError(`${backend}: ${what} failed: ${describeFailure(status, code, detail)}`, {
    retryable: isRetryable(err),
    ...(status !== undefined ? { status } : {}),
    ...(code !== undefined ? { code } : {}),
    cause: err,
  });
}
