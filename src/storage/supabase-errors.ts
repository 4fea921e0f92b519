// How the Supabase Storage API server's errors are taken. The server answers every error that is not a 500 with
// HTTP 400 and puts the real status in the JSON body (`{"statusCode":"503","error":"DatabaseReadOnly","message":…,
// "code":"DatabaseReadOnly"}`; its src/internal/errors/codes.ts and src/http/error-handler.ts), so the body decides.
// docs/storage.md shows this table to operators; a test keeps the two equal.
import { describeFailure } from './classify.js';
import { StorageError } from './types.js';

/** What an upload that met this error needs: nothing (retried), or an operator (and then which fix). */
export interface SupabaseErrorRule {
  retryable: boolean;
  /** Every upload meets it until an operator acts (workers stop claiming and re-check the bucket instead). */
  systemic?: boolean;
  /** What the operator does; `{bucket}` and `{size}` are filled in. */
  fix?: string;
}

const REQUEUE = 'then run "neotoma-ops requeue --all-failed"';
const WRONG_KEY =
  'the key is not a service-role or secret key of the project at SUPABASE_URL: set SUPABASE_SECRET_KEY (sb_secret_…) ' +
  `or SUPABASE_SERVICE_ROLE_KEY to one from Dashboard → Project Settings → API Keys, ${REQUEUE}`;
const TOO_LARGE =
  '{size} is over the limit of Storage ({limit}): raise it (Dashboard → Storage → Settings, or the bucket\'s ' +
  `file_size_limit) or lower plans.max_file_bytes below it (docs/storage.md), ${REQUEUE}`;

/** By the server's error `code` (its ErrorCode enum); a code not listed is judged by its status (`ruleFor`). */
export const SUPABASE_STORAGE_ERRORS: Readonly<Record<string, SupabaseErrorRule>> = {
  // the storage service's database is read-only, busy or slow for a moment
  DatabaseReadOnly: { retryable: true },
  LockTimeout: { retryable: true },
  DatabaseTimeout: { retryable: true },
  ResourceLocked: { retryable: true },
  SlowDown: { retryable: true },
  DatabaseTransactionAborted: { retryable: true },
  TransactionError: { retryable: true },
  DatabaseError: { retryable: true },
  InternalError: { retryable: true },
  DatabaseSchemaMismatch: { retryable: true },
  DatabaseInvalidObjectDefinition: { retryable: true },
  NoAvailableShard: { retryable: true },
  Aborted: { retryable: true },
  AbortedTerminate: { retryable: true },
  // configuration: every upload fails until it is fixed
  NoSuchBucket: {
    retryable: false,
    systemic: true,
    fix: 'create the private bucket "{bucket}" (SQL: insert into storage.buckets (id, name) values (\'{bucket}\', \'{bucket}\'); ' +
      `or Dashboard → Storage → New bucket), ${REQUEUE}`,
  },
  AccessDenied: { retryable: false, systemic: true, fix: WRONG_KEY },
  InvalidJWT: { retryable: false, systemic: true, fix: WRONG_KEY },
  ExpiredToken: { retryable: false, systemic: true, fix: WRONG_KEY },
  InvalidSignature: { retryable: false, systemic: true, fix: WRONG_KEY },
  SignatureDoesNotMatch: { retryable: false, systemic: true, fix: WRONG_KEY },
  TenantNotFound: {
    retryable: false,
    systemic: true,
    fix: `SUPABASE_URL does not name this project: set it to https://PROJECT.supabase.co, ${REQUEUE}`,
  },
  // this object only
  EntityTooLarge: { retryable: false, fix: TOO_LARGE },
  InvalidMimeType: {
    retryable: false,
    fix: `add the file's MIME type to the allowed_mime_types of bucket "{bucket}" (or clear them), ${REQUEUE}`,
  },
  InvalidKey: { retryable: false, fix: 'the object key is refused by Storage; report it with the job id' },
  InvalidRequest: { retryable: false, fix: 'Storage refused the request as malformed; report it with the job id' },
};

const NOT_STORAGE: SupabaseErrorRule = {
  retryable: false,
  systemic: true,
  fix: `SUPABASE_URL does not point at a Supabase project's API (its /storage/v1 was not found): set it to https://PROJECT.supabase.co, ${REQUEUE}`,
};

/**
 * The rule for an answer: by its code when the table knows it; else by status: 5xx (544 DatabaseTimeout included),
 * 429, 423 and 408 retry; 401 (the API gateway refusing the key) and a 404 without a code (no Storage API at that
 * URL) stop every upload; any other 4xx fails this upload.
 */
export function ruleFor(code: string | undefined, status: number | undefined): SupabaseErrorRule {
  const known = code !== undefined ? SUPABASE_STORAGE_ERRORS[code] : undefined;
  if (known) return known;
  if (status === undefined || status >= 500 || status === 429 || status === 423 || status === 408) return { retryable: true };
  if (status === 401) return { retryable: false, systemic: true, fix: WRONG_KEY };
  if (status === 404 && code === undefined) return NOT_STORAGE;
  return { retryable: false };
}

/** The answer of a failed request, as the adapter read it: HTTP status and the JSON body, when there was one. */
export interface SupabaseAnswer {
  httpStatus: number;
  body: unknown;
}

interface ErrorBody {
  statusCode?: unknown;
  error?: unknown;
  code?: unknown;
  message?: unknown;
}

function text(v: unknown): string | undefined {
  return typeof v === 'string' && v.trim() ? v.trim() : undefined;
}

export interface SupabaseErrorContext {
  what: string;
  bucket: string;
  /** Bytes of the upload (for EntityTooLarge). */
  size?: number;
  /** The bucket's own file_size_limit, when known; otherwise the platform's global limit is named. */
  bucketLimit?: number | null;
}

/**
 * The StorageError for one failed answer of the Storage API (or of the gateway in front of it): status from the
 * body's `statusCode` when present, else HTTP's; code and message kept; retry and fix from the table above.
 */
export function supabaseStorageError(answer: SupabaseAnswer, context: SupabaseErrorContext, cause?: unknown): StorageError {
  const body = (answer.body && typeof answer.body === 'object' ? answer.body : {}) as ErrorBody;
  const bodyStatus = Number(text(body.statusCode) ?? body.statusCode);
  const status = Number.isInteger(bodyStatus) && bodyStatus >= 100 && bodyStatus <= 599 ? bodyStatus : answer.httpStatus;
  const code = text(body.code) ?? text(body.error);
  const message = text(body.message) ?? text(body.error) ?? `HTTP ${answer.httpStatus}`;
  const rule = ruleFor(code, status);
  const limit = context.bucketLimit ? `bucket "${context.bucket}" file_size_limit ${context.bucketLimit} bytes` : "the project's global upload limit";
  const fix = rule.fix
    ?.replaceAll('{bucket}', context.bucket)
    .replace('{size}', context.size !== undefined ? `the file (${context.size} bytes)` : 'the file')
    .replace('{limit}', limit);
  return new StorageError(`supabase: ${context.what} failed: ${describeFailure(status, code, message)}${fix ? `. Fix: ${fix}.` : ''}`, {
    retryable: rule.retryable,
    systemic: rule.systemic ?? false,
    status,
    ...(code !== undefined ? { code } : {}),
    ...(fix !== undefined ? { fix } : {}),
    cause,
  });
}
