import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { toStorageError } from './classify.js';
import type { PutRequest, StorageAdapter } from './types.js';

export interface S3StorageOptions {
  /** Endpoint URL of any S3-compatible service; unset = AWS for `region`. */
  endpoint?: string;
  region: string;
  /** Physical bucket; unset = the logical bucket of each request (`sources`). */
  bucket?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Path-style addressing (`endpoint/bucket/key`), needed by most self-hosted S3 servers. */
  forcePathStyle?: boolean;
}

/**
 * S3 (or any S3-compatible endpoint) through @aws-sdk/client-s3. One attempt per call: retries are the
 * queue's job, with its own backoff, so the SDK does not retry behind the queue's back.
 */
export class S3Storage implements StorageAdapter {
  readonly backend = 's3';
  readonly client: S3Client;
  private readonly bucket: string | undefined;

  constructor(options: S3StorageOptions) {
    this.bucket = options.bucket;
    this.client = new S3Client({
      region: options.region,
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      forcePathStyle: options.forcePathStyle ?? false,
      maxAttempts: 1,
      // S3-compatible servers differ in which flexible checksums they accept; send them only when required.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      ...(options.accessKeyId && options.secretAccessKey
        ? { credentials: { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey } }
        : {}),
    });
  }

  async put(request: PutRequest): Promise<void> {
    const bucket = this.bucket ?? request.bucket;
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: request.key,
          Body: request.body,
          ContentType: request.contentType,
          ContentLength: request.body.length,
          Metadata: { 'content-sha256': request.contentHash },
        }),
        request.signal ? { abortSignal: request.signal } : {},
      );
    } catch (err) {
      throw toStorageError(err, 's3', `PutObject ${bucket}/${request.key}`);
    }
  }

  close(): void {
    this.client.destroy();
  }
}
