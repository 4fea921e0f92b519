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
  /** Releases sockets or handles held by the adapter. */
  close?(): Promise<void> | void;
}

export interface StorageErrorOptions {
  retryable: boolean;
  /** HTTP status of the storage service's answer, when there was one. */
  status?: number;
  /** Error code (errno code, S3 error name, Storage API code). */
  code?: string;
  cause?: unknown;
}

/** A failed storage write, classified: retryable (network, timeout, 5xx, 429) or not (other 4xx, permissions). */
export class StorageError extends Error {
  readonly retryable: boolean;
  readonly status?: number;
  readonly code?: string;
  constructor(message: string, options: StorageErrorOptions) {
    super(message, { cause: options.cause });
    this.name = 'StorageError';
    this.retryable = options.retryable;
    if (options.status !== undefined) this.status = options.status;
    if (options.code !== undefined) this.code = options.code;
  }
}
