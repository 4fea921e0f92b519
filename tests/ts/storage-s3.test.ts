// Runs once per test run: the S3 adapter against s3rver; no database is involved.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStorageFromEnv, S3Storage, StorageError } from '../../src/storage/index.js';

const user = '33333333-3333-4333-8333-333333333333';
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
let server: S3rver;
let endpoint: string;
let dir: string;

beforeAll(async () => {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  dir = await mkdtemp(path.join(os.tmpdir(), 'neotoma-s3-'));
  server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: dir, configureBuckets: [{ name: 'sources' }] });
  const { port } = await server.run();
  endpoint = `http://127.0.0.1:${port}`;
});
afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

const env = (): Record<string, string> => ({
  STORAGE_BACKEND: 's3',
  S3_ENDPOINT: endpoint,
  S3_REGION: 'us-east-1',
  S3_ACCESS_KEY_ID: 'S3RVER',
  S3_SECRET_ACCESS_KEY: 'S3RVER',
});

describe('s3 storage adapter against a local S3-protocol server (s3rver on 127.0.0.1)', () => {
  it('PutObject stores identical bytes under {user_id}/{content_hash} in the bucket', async () => {
    const storage = (await createStorageFromEnv(env())) as S3Storage;
    const body = randomBytes(1_500_000);
    const key = `${user}/${sha(body)}`;
    await storage.put({ bucket: 'sources', key, body, contentType: 'application/pdf', contentHash: sha(body) });
    const got = await storage.client.send(new GetObjectCommand({ Bucket: 'sources', Key: key }));
    expect(Buffer.from(await got.Body!.transformToByteArray()).equals(body)).toBe(true);
    expect(got.ContentType).toBe('application/pdf');
    expect(got.Metadata?.['content-sha256']).toBe(sha(body));
    storage.close();
  });

  it('a missing bucket is not retryable; an unreachable endpoint is', async () => {
    const body = Buffer.from('x');
    const missing = await createStorageFromEnv({ ...env(), S3_BUCKET: 'no-such-bucket' });
    const err = await missing.put({ bucket: 'sources', key: `${user}/${sha(body)}`, body, contentType: 't', contentHash: sha(body) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).status).toBe(404);
    expect((err as StorageError).retryable).toBe(false);
    const down = await createStorageFromEnv({ ...env(), S3_ENDPOINT: 'http://127.0.0.1:1' });
    await expect(down.put({ bucket: 'sources', key: `${user}/${sha(body)}`, body, contentType: 't', contentHash: sha(body) })).rejects.toMatchObject({ retryable: true });
  });
});
