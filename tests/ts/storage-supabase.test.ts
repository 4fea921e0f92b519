// Runs once per test run: the Supabase adapter against the real Storage server, on a database of the server's own.
// The Supabase storage adapter against the real Supabase Storage API server (1.11.2, file backend, behind its
// /storage/v1 gateway), with the faults that server can be made to produce on demand.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/paths.js';
import { createStorageFromEnv, StorageError, SUPABASE_STORAGE_ERRORS, SupabaseStorage, supabaseKeysFromEnv } from '../../src/storage/index.js';
import { jwtFor, realPartsTitle, startRealStorage, storageMissing, type RealStorage } from './helpers/real-storage.js';
import { REAL_ANSWERS, StorageStandIn } from './helpers/storage-standin.js';

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
/** Platform-wide upload limit of this server (Supabase's global file size limit). */
const GLOBAL_LIMIT = 256 * 1024;

let real: RealStorage;

function object(size = 100): { body: Buffer; key: string } {
  const body = randomBytes(size);
  return { body, key: `${randomUUID()}/${sha(body)}` };
}

async function put(storage: SupabaseStorage, bucket: string, o = object()): Promise<StorageError | 'ok'> {
  return storage.put({ bucket, key: o.key, body: o.body, contentType: 'application/octet-stream', contentHash: sha(o.body) }).then(
    () => 'ok' as const,
    (e: unknown) => {
      expect(e).toBeInstanceOf(StorageError);
      return e as StorageError;
    },
  );
}

describe('Supabase keys from the environment', () => {
  it('prefers a secret key, accepts every configured key, and names the variables when there is none', async () => {
    expect(supabaseKeysFromEnv({ SUPABASE_SERVICE_ROLE_KEY: 'jwt' })).toEqual({ own: 'jwt', accepted: ['jwt'] });
    expect(supabaseKeysFromEnv({ SUPABASE_SERVICE_ROLE_KEY: 'jwt', SUPABASE_SECRET_KEYS: '{"other":"sb_secret_b","default":"sb_secret_a"}' }))
      .toEqual({ own: 'sb_secret_a', accepted: ['sb_secret_a', 'sb_secret_b', 'jwt'] });
    expect(supabaseKeysFromEnv({ SUPABASE_SECRET_KEY: 'sb_secret_c' })).toEqual({ own: 'sb_secret_c', accepted: ['sb_secret_c'] });
    expect(() => supabaseKeysFromEnv({})).toThrow(/set SUPABASE_SECRET_KEY \(sb_secret_…\) or SUPABASE_SERVICE_ROLE_KEY/);
    expect(() => supabaseKeysFromEnv({ SUPABASE_SECRET_KEYS: 'sb_secret_x' })).toThrow(/SUPABASE_SECRET_KEYS is not JSON/);
    await expect(createStorageFromEnv({ STORAGE_BACKEND: 'supabase', SUPABASE_SERVICE_ROLE_KEY: 'k' })).rejects.toThrow(/needs SUPABASE_URL/);
    await expect(createStorageFromEnv({ STORAGE_BACKEND: 'gcs' })).rejects.toThrow(/fs, s3, supabase or module/);
  });
});

describe('docs/storage.md', () => {
  it("lists exactly the error table the adapter applies, with the same verdicts", async () => {
    const doc = await readFile(path.join(projectRoot, 'docs', 'storage.md'), 'utf8');
    const rows = [...doc.matchAll(/^\| `([A-Za-z]+)` \| (\d{3}) \| (retried|not retried)( \(every upload\))? \|/gm)];
    const documented = Object.fromEntries(rows.map((m) => [m[1]!, { retryable: m[3] === 'retried', systemic: Boolean(m[4]) }]));
    const applied = Object.fromEntries(
      Object.entries(SUPABASE_STORAGE_ERRORS).map(([code, r]) => [code, { retryable: r.retryable, systemic: r.systemic ?? false }]),
    );
    expect(documented).toEqual(applied);
  });
});

describe.skipIf(storageMissing)(realPartsTitle('the supabase adapter against the real Supabase Storage server'), () => {
  beforeAll(async () => {
    real = await startRealStorage({ fileSizeLimit: GLOBAL_LIMIT });
    await real.createBucket('small', 1024);
  }, 300_000);
  afterAll(async () => {
    await real?.stop();
  });

  const withKey = (key: string): SupabaseStorage => new SupabaseStorage({ url: real.url, key });

  it('stores the bytes with the service-role key or a secret key; storing the same key again replaces it', async () => {
    for (const key of [real.serviceRoleKey, real.secretKey]) {
      const o = object(200_000);
      expect(await put(withKey(key), 'sources', o)).toBe('ok');
      expect((await real.download('sources', o.key))?.equals(o.body)).toBe(true);
      const again = { body: randomBytes(10), key: o.key };
      expect(await put(withKey(key), 'sources', again)).toBe('ok');
      expect((await real.download('sources', o.key))?.equals(again.body)).toBe(true);
    }
    const fromEnv = await createStorageFromEnv({ STORAGE_BACKEND: 'supabase', SUPABASE_URL: `${real.url}/`, SUPABASE_SECRET_KEYS: real.secretKeys });
    expect(await put(fromEnv as SupabaseStorage, 'sources')).toBe('ok');
  });

  it("Storage's database read-only: 503 DatabaseReadOnly from the body (HTTP 400), retried; stored once writable", async () => {
    const storage = withKey(real.serviceRoleKey);
    const o = object();
    await real.setReadOnly(true);
    try {
      const e = await put(storage, 'sources', o);
      expect(e).toMatchObject({ status: 503, code: 'DatabaseReadOnly', retryable: true, systemic: false });
      expect((e as StorageError).message).toMatch(/failed: 503 DatabaseReadOnly: The database is currently in read-only mode\. Please try again later\.$/);
    } finally {
      await real.setReadOnly(false);
    }
    expect(await put(storage, 'sources', o)).toBe('ok');
  });

  it("the object's lock held past the server's 5 s: 503 LockTimeout, retried", async () => {
    const o = object();
    const release = await real.holdObjectLock('sources', o.key);
    try {
      expect(await put(withKey(real.serviceRoleKey), 'sources', o)).toMatchObject({ status: 503, code: 'LockTimeout', retryable: true });
    } finally {
      await release();
    }
  });

  it('a missing bucket: 404 NoSuchBucket, for every upload, with the command that creates it and the requeue', async () => {
    const storage = withKey(real.serviceRoleKey);
    const e = (await put(storage, 'missing')) as StorageError;
    expect(e).toMatchObject({ status: 404, code: 'NoSuchBucket', retryable: false, systemic: true });
    expect(e.fix).toMatch(/create the private bucket "missing" \(SQL: insert into storage\.buckets \(id, name\) values \('missing', 'missing'\)/);
    expect(e.fix).toMatch(/neotoma-ops requeue --all-failed/);
    await expect(storage.check('missing')).rejects.toMatchObject({ status: 404, code: 'NoSuchBucket', systemic: true });
    await expect(storage.check('sources')).resolves.toBeUndefined();
  });

  it("a key of another project: 403 AccessDenied (a JWT) or 401 from the gateway (a secret key), for every upload", async () => {
    const foreignJwt = await jwtFor('service_role', 'the-secret-of-another-project-0123456789abcdef');
    const e = (await put(withKey(foreignJwt), 'sources')) as StorageError;
    expect(e).toMatchObject({ status: 403, code: 'AccessDenied', retryable: false, systemic: true });
    expect(e.fix).toMatch(/not a service-role or secret key of the project at SUPABASE_URL/);
    const e2 = (await put(withKey('sb_secret_of_another_project'), 'sources')) as StorageError;
    expect(e2).toMatchObject({ status: 401, retryable: false, systemic: true });
    expect(e2.message).toMatch(/401: Invalid API key/);
    await expect(withKey(foreignJwt).check('sources')).rejects.toMatchObject({ code: 'AccessDenied', systemic: true });
  });

  it("over the bucket's file_size_limit or the platform's limit: 413 EntityTooLarge naming which limit, not retried", async () => {
    const storage = withKey(real.serviceRoleKey);
    const small = (await put(storage, 'small', object(2048))) as StorageError;
    expect(small).toMatchObject({ status: 413, code: 'EntityTooLarge', retryable: false, systemic: false });
    expect(small.fix).toMatch(/the file \(2048 bytes\) is over the limit of Storage \(bucket "small" file_size_limit 1024 bytes\)/);
    const big = (await put(storage, 'sources', object(GLOBAL_LIMIT + 1))) as StorageError;
    expect(big).toMatchObject({ status: 413, code: 'EntityTooLarge', retryable: false });
    expect(big.fix).toMatch(/over the limit of Storage \(the project's global upload limit\)/);
    expect(await put(storage, 'sources', object(GLOBAL_LIMIT))).toBe('ok');
  });

  it('the stand-in kept for slow answers answers every recorded error exactly as the real server does', async () => {
    const answer = async (url: string, key: string, bucket: string, o = object()): Promise<{ http: number; body: unknown }> => {
      const res = await fetch(`${url}/storage/v1/object/${bucket}/${o.key}`, {
        method: 'POST',
        headers: { apikey: key, authorization: `Bearer ${key}`, 'content-type': 'application/octet-stream', 'x-upsert': 'true' },
        body: new Uint8Array(o.body),
      });
      return { http: res.status, body: await res.json() };
    };
    const readOnlyKey = object();
    await real.setReadOnly(true);
    const readOnly = await answer(real.url, real.serviceRoleKey, 'sources', readOnlyKey).finally(() => real.setReadOnly(false));
    expect(readOnly).toEqual(REAL_ANSWERS.DatabaseReadOnly);
    expect(await answer(real.url, real.serviceRoleKey, 'missing')).toEqual(REAL_ANSWERS.NoSuchBucket);
    expect(await answer(real.url, real.serviceRoleKey, 'small', object(2048))).toEqual(REAL_ANSWERS.EntityTooLarge);
    const locked = object();
    const release = await real.holdObjectLock('sources', locked.key);
    expect(await answer(real.url, real.serviceRoleKey, 'sources', locked).finally(release)).toEqual(REAL_ANSWERS.LockTimeout);

    const standIn = new StorageStandIn();
    await standIn.start();
    try {
      for (const name of Object.keys(REAL_ANSWERS) as (keyof typeof REAL_ANSWERS)[]) {
        standIn.behave = () => ({ answer: name });
        expect(await answer(standIn.url, standIn.serviceKey, 'sources'), name).toEqual(REAL_ANSWERS[name]);
      }
    } finally {
      await standIn.stop();
    }
  }, 30_000);

  it('storage down: the gateway answers 502 (retried); nothing listening: connection refused (retried)', async () => {
    const storage = withKey(real.serviceRoleKey);
    await real.stopServer();
    expect(await put(storage, 'sources')).toMatchObject({ status: 502, retryable: true, systemic: false });
    await real.stopGateway();
    const refused = (await put(storage, 'sources')) as StorageError;
    expect(refused).toMatchObject({ retryable: true, systemic: false });
    expect(refused.code).toMatch(/^(ECONNREFUSED|ECONNRESET|UND_ERR_SOCKET)$/); // a kept-alive socket may break first
    await expect(storage.check('sources')).rejects.toMatchObject({ retryable: true, systemic: false });
  });
});

describe('dropped connections and timeouts (the stand-in: the real server cannot drop or stall on demand)', () => {
  const standIn = new StorageStandIn();
  beforeAll(() => standIn.start());
  afterAll(() => standIn.stop());

  it('a dropped connection and a timeout are retried', async () => {
    const storage = new SupabaseStorage({ url: standIn.url, key: standIn.serviceKey });
    const o = object();
    const req = { bucket: 'sources', key: o.key, body: o.body, contentType: 't', contentHash: sha(o.body) };
    standIn.behave = () => ({ drop: true });
    await expect(storage.put(req)).rejects.toMatchObject({ name: 'StorageError', retryable: true });
    standIn.behave = () => ({ delayMs: 2000 });
    await expect(storage.put({ ...req, signal: AbortSignal.timeout(100) })).rejects.toMatchObject({ name: 'StorageError', retryable: true });
  });
});
