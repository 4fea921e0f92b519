import { createHash } from 'node:crypto';
import pg from 'pg';
import { StorageError, type StorageAdapter } from './storage/types.js';
import { toStorageError } from './storage/classify.js';

export interface IngestInput {
  userId: string;
  content: Buffer | Uint8Array;
  mimeType: string;
  filename?: string | null;
  provenance?: Record<string, unknown>;
}

export interface IngestOptions {
  storage: StorageAdapter;
  /** Time allowed for the upload before it is handed to the queue (default 10 s). */
  uploadTimeoutMs?: number;
  /** Logical bucket (default `sources`). */
  bucket?: string;
}

export type StorageStatus = 'pending' | 'uploaded' | 'failed';

export type IngestResult =
  /** Stored now; the source row says `uploaded`. */
  | { status: 'uploaded'; sourceId: string; contentHash: string; storageUrl: string; byteSize: number }
  /** Storage failed; the source row says `pending` and the bytes wait in the upload queue as job `jobId`. */
  | { status: 'pending_retry'; sourceId: string; jobId: string; contentHash: string; storageUrl: string; byteSize: number; error: string }
  /** The user already has this content: nothing written, the existing source returned. */
  | { status: 'duplicate'; sourceId: string; contentHash: string; storageUrl: string; byteSize: number; storageStatus: StorageStatus };

type Db = pg.Pool | pg.ClientBase;

interface SourceRow {
  id: string;
  storage_url: string;
  storage_status: StorageStatus;
}

async function existingSource(db: Db, userId: string, hash: string): Promise<SourceRow | undefined> {
  const { rows } = await db.query<SourceRow>(
    'SELECT id, storage_url, storage_status FROM public.sources WHERE user_id = $1 AND content_hash = $2',
    [userId, hash],
  );
  return rows[0];
}

const INSERT_SOURCE = `
  INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size, original_filename, provenance, storage_status)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
  ON CONFLICT (user_id, content_hash) DO NOTHING
  RETURNING id`;

/**
 * The ingest side effect of the API server: hash the bytes, try the storage upload (short timeout), and record
 * the source. Upload succeeded → `sources` row `uploaded`. Upload failed → in one transaction the row is inserted
 * `pending` and the bytes are enqueued (`enqueue_upload`), so the worker finishes the job later; the result says
 * `pending_retry` with the job id. The same user sending the same content again gets the existing source back.
 * Content over the user's quota is refused before the upload (`check_storage_quota`). Database errors, quota
 * rejections (SQLSTATE PT402 / PT413) included, are thrown unchanged.
 */
export async function ingestSource(db: Db, input: IngestInput, options: IngestOptions): Promise<IngestResult> {
  const content = Buffer.isBuffer(input.content) ? input.content : Buffer.from(input.content);
  const contentHash = createHash('sha256').update(content).digest('hex');
  const bucket = options.bucket ?? 'sources';
  const byteSize = content.length;

  const duplicate = (row: SourceRow): IngestResult => ({
    status: 'duplicate',
    sourceId: row.id,
    contentHash,
    byteSize,
    storageUrl: row.storage_url,
    storageStatus: row.storage_status,
  });

  const known = await existingSource(db, input.userId, contentHash);
  if (known) return duplicate(known);
  // Content the quota would refuse is refused before it is uploaded: no bytes sent, no unreferenced object
  // left in storage. The trigger on sources still decides for concurrent ingests (checked again at insert).
  // The storage key comes from the database, which also builds the queue's storage_path.
  const checked = await db.query<{ key: string }>(
    'SELECT public.check_storage_quota($1, $2), neotoma_ops.storage_key($1, $3) AS key',
    [input.userId, byteSize, contentHash],
  );
  const storageUrl = checked.rows[0]!.key;
  const base = { contentHash, storageUrl, byteSize };

  let uploadError: StorageError | undefined;
  try {
    await options.storage.put({
      bucket,
      key: storageUrl,
      body: content,
      contentType: input.mimeType,
      contentHash,
      signal: AbortSignal.timeout(options.uploadTimeoutMs ?? 10_000),
    });
  } catch (err) {
    uploadError = toStorageError(err, options.storage.backend, 'upload');
  }

  const values = [
    input.userId,
    contentHash,
    input.mimeType,
    storageUrl,
    byteSize,
    input.filename ?? null,
    JSON.stringify(input.provenance ?? {}),
  ];

  if (!uploadError) {
    const { rows } = await db.query<{ id: string }>(INSERT_SOURCE, [...values, 'uploaded']);
    if (rows[0]) return { status: 'uploaded', sourceId: rows[0].id, ...base };
    const raced = await existingSource(db, input.userId, contentHash);
    if (raced) return duplicate(raced);
    throw new Error(`source ${storageUrl} neither inserted nor found`);
  }

  const message = uploadError.message.slice(0, 1000);
  const pooled = db instanceof pg.Pool ? await db.connect() : undefined;
  const client = pooled ?? db;
  // A checked-out client is outside the pool's error handling: without a listener, a connection lost between
  // two statements (a database restart) would be an uncaught 'error' event that ends the API server's process.
  let connectionError: Error | undefined;
  const onConnectionError = (err: Error): void => {
    connectionError = err;
  };
  pooled?.on('error', onConnectionError);
  let outcome: IngestResult | undefined;
  try {
    await client.query('BEGIN');
    const { rows } = await client.query<{ id: string }>(INSERT_SOURCE, [...values, 'pending']);
    const sourceId = rows[0]?.id;
    if (sourceId) {
      // the bucket travels with the job: the retry stores where this attempt tried to
      const job = await client.query<{ job_id: string }>('SELECT public.enqueue_upload($1, $2, $3, $4) AS job_id', [
        sourceId,
        content,
        message,
        bucket,
      ]);
      await client.query('COMMIT');
      const jobId = job.rows[0]?.job_id;
      if (!jobId) throw new Error('enqueue_upload returned no job id');
      outcome = { status: 'pending_retry', sourceId, jobId, ...base, error: message };
    } else {
      await client.query('ROLLBACK');
    }
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    pooled?.off('error', onConnectionError);
    // a lost connection goes back as broken, so the pool discards it instead of handing it out again
    pooled?.release(connectionError);
  }
  if (outcome) return outcome;
  const raced = await existingSource(db, input.userId, contentHash);
  if (raced) return duplicate(raced);
  throw new Error(`source ${storageUrl} neither inserted nor found`);
}
