import { StorageClient } from '@supabase/storage-js';
import { toStorageError } from './classify.js';
import { supabaseStorageError, type SupabaseAnswer, type SupabaseErrorContext } from './supabase-errors.js';
import type { PutRequest, StorageAdapter } from './types.js';

export interface SupabaseStorageOptions {
  /** Project URL, e.g. https://abc.supabase.co (the adapter adds /storage/v1). */
  url: string;
  /**
   * A key that bypasses Storage RLS, as a server-side worker's should: a secret key (`sb_secret_…`) or the legacy
   * service-role key (a JWT; Supabase retires those at the end of 2026).
   */
  key: string;
}

interface Call {
  client: StorageClient;
  /** The answer of the request that failed, when one came back (a network error brings none). */
  failed(): SupabaseAnswer | undefined;
}

/** Supabase Storage through @supabase/storage-js: upsert of `{bucket}/{key}`; errors as the Storage server means them. */
export class SupabaseStorage implements StorageAdapter {
  readonly backend = 'supabase';
  private readonly storageUrl: string;
  private readonly headers: Record<string, string>;

  constructor(options: SupabaseStorageOptions) {
    this.storageUrl = `${options.url.replace(/\/+$/, '')}/storage/v1`;
    this.headers = { apikey: options.key, Authorization: `Bearer ${options.key}` };
  }

  /** A client whose fetch honours `signal` (storage-js takes none) and keeps the body of an error answer. */
  private call(signal?: AbortSignal): Call {
    let answer: SupabaseAnswer | undefined;
    const tracked: typeof fetch = async (input, init) => {
      const res = await fetch(input, signal ? { ...init, signal } : init);
      if (!res.ok) answer = { httpStatus: res.status, body: await res.clone().json().catch(() => undefined) };
      return res;
    };
    return { client: new StorageClient(this.storageUrl, this.headers, tracked), failed: () => answer };
  }

  async put(request: PutRequest): Promise<void> {
    const what = `upload of ${request.bucket}/${request.key}`;
    const { client, failed } = this.call(request.signal);
    let result: Awaited<ReturnType<ReturnType<StorageClient['from']>['upload']>>;
    try {
      result = await client.from(request.bucket).upload(request.key, request.body, { contentType: request.contentType, upsert: true });
    } catch (err) {
      throw toStorageError(err, 'supabase', what);
    }
    if (!result.error) return;
    const answer = failed();
    if (!answer) {
      // no answer (refused, reset, aborted): storage-js wraps the network error, classify the original one
      throw toStorageError((result.error as { originalError?: unknown }).originalError ?? result.error, 'supabase', what);
    }
    const context: SupabaseErrorContext = { what, bucket: request.bucket, size: request.body.length };
    if ((answer.body as { code?: unknown } | undefined)?.code === 'EntityTooLarge') context.bucketLimit = await this.bucketLimit(request.bucket);
    throw supabaseStorageError(answer, context, result.error);
  }

  /** Resolves when the bucket exists and the key is accepted; else throws what an upload would meet. */
  async check(bucket: string, signal?: AbortSignal): Promise<void> {
    await this.bucket(bucket, signal);
  }

  private async bucket(bucket: string, signal?: AbortSignal): Promise<{ file_size_limit: number | null }> {
    const what = `check of bucket ${bucket}`;
    const { client, failed } = this.call(signal);
    let result: Awaited<ReturnType<StorageClient['getBucket']>>;
    try {
      result = await client.getBucket(bucket);
    } catch (err) {
      throw toStorageError(err, 'supabase', what);
    }
    if (!result.error) return { file_size_limit: result.data.file_size_limit ?? null };
    const answer = failed();
    if (!answer) throw toStorageError((result.error as { originalError?: unknown }).originalError ?? result.error, 'supabase', what);
    throw supabaseStorageError(answer, { what, bucket }, result.error);
  }

  /** The bucket's own file_size_limit (null: none, the platform's global limit applies), undefined when unknown. */
  private async bucketLimit(bucket: string): Promise<number | null | undefined> {
    return this.bucket(bucket).then((b) => b.file_size_limit, () => undefined);
  }
}
