import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStorageFromEnv, StorageError, SupabaseStorage } from '../../src/storage/index.js';
import { StorageStandIn } from './helpers/storage-standin.js';

const user = '22222222-2222-4222-8222-222222222222';
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const standIn = new StorageStandIn();

beforeAll(async () => {
  await standIn.start();
});
afterAll(async () => {
  await standIn.stop();
});

// Tested against a local stand-in of the Storage upload endpoint, not against a real Supabase project.
describe('supabase storage adapter (local stand-in of the Storage upload endpoint)', () => {
  it('upserts the bytes to /storage/v1/object/sources/{user_id}/{hash} with the service key', async () => {
    const storage = createStorageFromEnv({ STORAGE_BACKEND: 'supabase', SUPABASE_URL: `${standIn.url}/`, SUPABASE_SERVICE_ROLE_KEY: standIn.serviceKey });
    expect(storage.backend).toBe('supabase');
    const body = randomBytes(200_000);
    const key = `${user}/${sha(body)}`;
    await storage.put({ bucket: 'sources', key, body, contentType: 'application/pdf', contentHash: sha(body) });
    const obj = standIn.objects.get(`sources/${key}`);
    expect(obj?.body.equals(body)).toBe(true);
    expect(obj?.contentType).toBe('application/pdf');
    const req = standIn.requests.at(-1)!;
    expect(req.method).toBe('POST');
    expect(req.headers['x-upsert']).toBe('true');
  });

  it('classifies answers: 5xx and 429 retryable, other 4xx not; connection refused and timeout retryable', async () => {
    const storage = new SupabaseStorage({ url: standIn.url, serviceRoleKey: standIn.serviceKey });
    const body = Buffer.from('classify');
    const put = (signal?: AbortSignal): Promise<unknown> =>
      storage.put({ bucket: 'sources', key: `${user}/${sha(body)}`, body, contentType: 'text/plain', contentHash: sha(body), ...(signal ? { signal } : {}) }).then(
        () => 'ok',
        (e: unknown) => e,
      );
    for (const [status, retryable] of [[500, true], [503, true], [429, true], [400, false], [403, false], [404, false], [413, false]] as const) {
      standIn.behave = () => ({ status });
      const err = await put();
      expect(err, `status ${status}`).toBeInstanceOf(StorageError);
      expect((err as StorageError).status).toBe(status);
      expect((err as StorageError).retryable, `status ${status}`).toBe(retryable);
    }
    standIn.behave = () => ({ delayMs: 2000 });
    const timedOut = await put(AbortSignal.timeout(100));
    expect(timedOut).toMatchObject({ name: 'StorageError', retryable: true });
    standIn.behave = () => ({});
    const wrongKey = new SupabaseStorage({ url: standIn.url, serviceRoleKey: 'wrong' });
    await expect(wrongKey.put({ bucket: 'sources', key: `${user}/${sha(body)}`, body, contentType: 't', contentHash: sha(body) })).rejects.toMatchObject({ status: 403, retryable: false });
    const refused = new SupabaseStorage({ url: 'http://127.0.0.1:1', serviceRoleKey: 'k' });
    await expect(refused.put({ bucket: 'sources', key: `${user}/${sha(body)}`, body, contentType: 't', contentHash: sha(body) })).rejects.toMatchObject({ retryable: true });
  });

  it('names the missing setting', () => {
    expect(() => createStorageFromEnv({ STORAGE_BACKEND: 'supabase', SUPABASE_URL: 'http://x' })).toThrow(/SUPABASE_SERVICE_ROLE_KEY/);
    expect(() => createStorageFromEnv({ STORAGE_BACKEND: 'gcs' })).toThrow(/fs, s3 or supabase/);
  });
});
