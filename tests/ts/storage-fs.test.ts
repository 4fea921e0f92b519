// Runs once per test run: the filesystem adapter; no database is involved.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/paths.js';
import { FsStorage, StorageError } from '../../src/storage/index.js';

const user = '11111111-1111-4111-8111-111111111111';
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'neotoma-fs-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('fs storage adapter', () => {
  it('stores identical bytes at sources/{user_id}/{content_hash} and leaves no temporary file', async () => {
    const storage = new FsStorage({ root: path.join(dir, 'a') });
    const body = randomBytes(300_000);
    const key = `${user}/${sha(body)}`;
    await storage.put({ bucket: 'sources', key, body, contentType: 'application/octet-stream', contentHash: sha(body) });
    const file = path.join(dir, 'a', 'sources', user, sha(body));
    expect(storage.pathOf('sources', key)).toBe(file);
    expect((await readFile(file)).equals(body)).toBe(true);
    expect(await readdir(path.dirname(file))).toEqual([sha(body)]);
    // a repeated upload of the same job is harmless
    await storage.put({ bucket: 'sources', key, body, contentType: 'application/octet-stream', contentHash: sha(body) });
    expect((await readFile(file)).equals(body)).toBe(true);
  });

  it('refuses keys that leave the root, and reports permission-type failures as not retryable', async () => {
    const storage = new FsStorage({ root: path.join(dir, 'b') });
    const body = Buffer.from('x');
    await expect(storage.put({ bucket: 'sources', key: '../../etc/passwd', body, contentType: 't', contentHash: sha(body) })).rejects.toMatchObject({
      name: 'StorageError',
      retryable: false,
    });
    const fileAsRoot = path.join(dir, 'not-a-folder');
    await writeFile(fileAsRoot, 'x');
    const broken = new FsStorage({ root: fileAsRoot });
    const err = await broken.put({ bucket: 'sources', key: `${user}/${sha(body)}`, body, contentType: 't', contentHash: sha(body) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StorageError);
    expect((err as StorageError).code).toBe('ENOTDIR');
    expect((err as StorageError).retryable).toBe(false);
  });

  it('an aborted write leaves nothing behind', async () => {
    const storage = new FsStorage({ root: path.join(dir, 'c') });
    const body = randomBytes(1000);
    const ac = new AbortController();
    ac.abort(new Error('stop'));
    const err = await storage.put({ bucket: 'sources', key: `${user}/${sha(body)}`, body, contentType: 't', contentHash: sha(body), signal: ac.signal }).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'StorageError', retryable: true });
    await expect(stat(path.join(dir, 'c', 'sources', user, sha(body)))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('a writer killed mid-write never leaves a partial file at the final path', async () => {
    const root = path.join(dir, 'd');
    const storage = new FsStorage({ root });
    const key = `${user}/${'a'.repeat(64)}`;
    const finalPath = storage.pathOf('sources', key);
    const old = Buffer.from('previous complete object');
    await storage.put({ bucket: 'sources', key, body: old, contentType: 't', contentHash: sha(old) });

    // A child process writes 4 MiB in 64 KiB chunks, 40 ms apart, through the real adapter.
    const script = path.join(dir, 'slow-writer.mjs');
    await writeFile(
      script,
      `import { FsStorage } from ${JSON.stringify(path.join(projectRoot, 'dist', 'storage', 'fs.js'))};
       class Slow extends FsStorage {
         async writeChunk(fh, chunk, pos) { await new Promise((r) => setTimeout(r, 40)); return super.writeChunk(fh, chunk, pos); }
       }
       const s = new Slow({ root: ${JSON.stringify(root)}, chunkBytes: 65536 });
       await s.put({ bucket: 'sources', key: ${JSON.stringify(key)}, body: Buffer.alloc(4 << 20, 7), contentType: 't', contentHash: 'x' });
       console.log('finished');`,
    );
    const child = spawn(process.execPath, [script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_c, sig) => resolve(sig)));
    const folder = path.dirname(finalPath);
    let partial: string | undefined;
    for (let i = 0; i < 200 && !partial; i++) {
      await new Promise((r) => setTimeout(r, 20));
      for (const f of await readdir(folder)) {
        if (f.endsWith('.tmp') && (await stat(path.join(folder, f))).size >= 3 * 65536) partial = f;
      }
    }
    expect(partial, 'the writer should have started its temporary file').toBeDefined();
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    const tmpSize = (await stat(path.join(folder, partial!))).size;
    expect(tmpSize).toBeGreaterThan(0);
    expect(tmpSize).toBeLessThan(4 << 20);
    // the final path still holds the previous complete object, never the partial one
    expect((await readFile(finalPath)).equals(old)).toBe(true);
  });
});
