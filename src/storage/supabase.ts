import { StorageClient } from '@supabase/storage-js';
import { toStorageError } from './classify.js';
import type { PutRequest, StorageAdapter } from './types.js';

export interface SupabaseStorageOptions {
  /** Project URL, e.g. https://abc.supabase.co (the adapter adds /storage/v1). */
  url: string;
  /** Service role key: uploads bypass Storage RLS, as a server-side worker should. */
  serviceRoleKey: string;
}

/** Supabase Storage through @supabase/storage-js: upsert of `{bucket}/{key}`. */
export class SupabaseStorage implements StorageAdapter {
  readonly backend = 'supabase';
  private readonly storageUrl: string;
  private readonly headers: Record<string, string>;

  constructor(options: SupabaseStorageOptions) {
    this.storageUrl = `${options.url.replace(/\/+$/, '')}/storage/v1`;
    this.headers = { apikey: options.serviceRoleKey, Authorization: `Bearer ${options.serviceRoleKey}` };
  }

  async put(request: PutRequest): Promise<void> {
    const signal = request.signal;
    // storage-js's upload() takes no AbortSignal: bind it through the fetch it is given.
    const boundFetch: typeof fetch = (input, init) => fetch(input, signal ? { ...init, signal } : init);
    const client = new StorageClient(this.storageUrl, this.headers, boundFetch);
    let result: Awaited<ReturnType<ReturnType<StorageClient['from']>['upload']>>;
    try {
      result = await client.from(request.bucket).upload(request.key, request.body, {
        contentType: request.contentType,
        upsert: true,
      });
    } catch (err) {
      throw toStorageError(err, 'supabase', `upload of ${request.bucket}/${request.key}`);
    }
    if (result.error) {
      const e = result.error as { originalError?: unknown };
      // A network failure arrives wrapped (StorageUnknownError): classify by the original error.
      const cause = e.originalError ?? result.error;
      throw toStorageError(cause, 'supabase', `upload of ${request.bucket}/${request.key}`);
    }
  }
}
