/**
 * An error the operator can fix (bad configuration, unreachable database, missing package).
 * The CLI prints its message alone and exits 2; the stack is shown only when DEBUG is set.
 */
export class OperationalError extends Error {
  readonly exitCode = 2;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'OperationalError';
  }
}
