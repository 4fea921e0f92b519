/** One object to store: `key` is content-addressed (`{user_id}/{content_hash}`), so writing it twice is harmless. */
export interface PutRequest {
  /** Logical bucket (the queue's `bucket` column, `sources` by default). */
  bucket: string;
  key: string;
  body: Buffer;
  contentType: string;
  /** SHA-256 of `body`, 64 lowercase hex. */
  contentHash: string;
  /** Aborts the write (upload timeout, lost lease, shutdown). */
  signal?: AbortSignal;
}

/** The one small interface every storage backend implements. */
export interface StorageAdapter {
  /** `fs`, `s3` or `supabase` (or a test double's name). */
  readonly backend: string;
  /** Stores the object, replacing any object at the same key. Throws a StorageError on failure. */
  put(request: PutRequest): Promise<void>;
  /**
   * Whether uploads into `bucket` can succeed at all (the bucket exists, the credentials are accepted): resolves, or
   * throws the StorageError an upload would meet. Backends without such a check leave it out.
   */
  check?(bucket: string, signal?: AbortSignal): Promise<void>;
  /** Releases sockets or handles held by the adapter. */
  close?(): Promise<void> | void;
}

export interface StorageErrorOptions {
  retryable: boolean;
  /**
   * Every upload will fail the same way until an operator acts (a missing bucket, a key of another project), so a
   * worker stops claiming until `check()` passes instead of failing every job in turn.
   */
  systemic?: boolean;
  /** The status the storage service meant: the body's `statusCode` where it sends one (Supabase Storage), else HTTP's. */
  status?: number;
  /** Error code (errno code, S3 error name, Supabase Storage `code` such as `DatabaseReadOnly`). */
  code?: string;
  /** What the operator does about it, when a person must act. */
  fix?: string;
  cause?: unknown;
}

/** A failed storage write, classified: retryable (network, timeout, 5xx, 429) or not (other 4xx, permissions). */
export class StorageError extends Error {
  readonly retryable: boolean;
  readonly systemic: boolean;
  readonly status?: number;
  readonly code?: string;
  readonly fix?: string;
  constructor(message: string, options: StorageErrorOptions) {
    super(message, { cause: options.cause });
    this.name = 'StorageError';
    this.retryable = options.retryable;
    this.systemic = options.systemic ?? false;
    if (options.status !== undefined) this.status = options.status;
    if (options.code !== undefined) this.code = options.code;
    if (options.fix !== undefined) this.fix = options.fix;
  }
}
