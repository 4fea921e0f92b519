import { OperationalError } from '../errors.js';

/** SQLSTATEs the project's functions raise for a request the caller can correct. */
const CALLER_ERRORS = new Set(['22023', '22P02', '23502', '23503', '23514', '55000', 'P0002', 'PT402', 'PT413']);

/** A database error the caller can fix becomes an OperationalError carrying the database's message and hint. */
export function explainDbError(err: unknown): unknown {
  const e = err as { code?: string; message?: string; hint?: string };
  if (e.code === '42P01' || e.code === '42883') {
    return new OperationalError(
      `This database lacks neotoma-ops objects (${e.message ?? 'missing object'}): run \`neotoma-ops migrate up\` against it first.`,
      { cause: err },
    );
  }
  if (e.code && CALLER_ERRORS.has(e.code)) {
    return new OperationalError(`${e.message ?? 'refused'}${e.hint ? `. ${e.hint}` : ''}`, { cause: err });
  }
  return err;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Checks a command-line argument is a UUID, naming it when it is not. */
export function requireUuid(value: string | undefined, what: string): string {
  if (!value || !UUID.test(value)) {
    throw new OperationalError(`${what} must be a UUID like 3f2a9c1e-0b7d-4e0a-9d1c-2a6b8f4e5d70, got "${value ?? ''}".`);
  }
  return value.toLowerCase();
}
