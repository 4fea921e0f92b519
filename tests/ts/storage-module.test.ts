// Runs once per test run: loading storage modules; no database is involved.
// STORAGE_BACKEND=module: an adapter of one's own, loaded from STORAGE_MODULE (docs/storage.md, "Your own adapter").
// The fault-injecting test double is loaded this way too (storage-faulty.test.ts, the soak, worker processes).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OperationalError } from '../../src/errors.js';
import { createStorageFromEnv } from '../../src/storage/index.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'neotoma-storage-module-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes an ES module into the test folder and returns its path. */
async function moduleFile(name: string, source: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, source);
  return file;
}

describe('STORAGE_BACKEND=module', () => {
  it("uses the adapter createStorage(env) returns, given the whole environment; the path may be relative to the current directory", async () => {
    const file = await moduleFile(
      'memory.mjs',
      `export async function createStorage(env) {
         const objects = new Map();
         return { backend: 'memory:' + env.MEMORY_NAME, objects, async put(r) { objects.set(r.bucket + '/' + r.key, r.body); } };
       }`,
    );
    const storage = await createStorageFromEnv({ STORAGE_BACKEND: 'module', STORAGE_MODULE: path.relative(process.cwd(), file), MEMORY_NAME: 'one' });
    expect(storage.backend).toBe('memory:one');
    const body = Buffer.from('bytes');
    await storage.put({ bucket: 'sources', key: 'u/h', body, contentType: 'text/plain', contentHash: 'h' });
    expect((storage as unknown as { objects: Map<string, Buffer> }).objects.get('sources/u/h')).toEqual(body);
  });

  it('says what is missing or wrong, naming the module, as an operational error', async () => {
    const env = (file?: string) => ({ STORAGE_BACKEND: 'module', ...(file === undefined ? {} : { STORAGE_MODULE: file }) });
    await expect(createStorageFromEnv(env())).rejects.toThrow(/STORAGE_BACKEND=module needs STORAGE_MODULE.*createStorage\(env\)/);
    const missing = path.join(dir, 'no-such-module.mjs');
    await expect(createStorageFromEnv(env(missing))).rejects.toThrow(new RegExp(`STORAGE_MODULE ${missing} could not be loaded`));
    const noFactory = await moduleFile('no-factory.mjs', 'export const storage = {};');
    await expect(createStorageFromEnv(env(noFactory))).rejects.toThrow(/exports no function createStorage/);
    const notAnAdapter = await moduleFile('not-an-adapter.mjs', "export function createStorage() { return { backend: 'x' }; }");
    await expect(createStorageFromEnv(env(notAnAdapter))).rejects.toThrow(/must return an object with a backend name and put\(request\)/);
    const throws = await moduleFile('throws.mjs', "export function createStorage() { throw new Error('no credentials'); }");
    const err = await createStorageFromEnv(env(throws)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OperationalError);
    expect((err as Error).message).toBe(`STORAGE_MODULE ${throws}: createStorage(env) failed: no credentials`);
  });
});
