// Runs once per test run: the fault-injecting storage double; no database is involved.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OperationalError } from '../../src/errors.js';
import { createStorageFromEnv } from '../../src/storage/index.js';
import { StorageError, type PutRequest } from '../../src/storage/types.js';
import { FaultyStorage, PartialWriteFsStorage, checkFaultSettings } from './helpers/faulty-storage.mjs';
import { ScriptedStorage } from './helpers/scripted-storage.js';

const FAULTY_MODULE = fileURLToPath(new URL('./helpers/faulty-storage.mjs', import.meta.url));

let root: string;
beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'neotoma-faulty-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
function request(body: Buffer, extra: Partial<PutRequest> = {}): PutRequest {
  const h = sha(body);
  return { bucket: 'sources', key: `u1/${h}`, body, contentType: 'application/octet-stream', contentHash: h, ...extra };
}
async function failure(p: Promise<unknown>): Promise<StorageError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(StorageError);
    return err as StorageError;
  }
  throw new Error('expected the write to fail');
}

describe('FaultyStorage: each fault kind', () => {
  it('passes writes through when no fault is configured', async () => {
    const fs = new PartialWriteFsStorage({ root: path.join(root, 'pass'), durable: false });
    const s = new FaultyStorage({ inner: fs });
    const body = Buffer.from('plain bytes');
    await s.put(request(body));
    expect(await readFile(fs.pathOf('sources', `u1/${sha(body)}`))).toEqual(body);
    expect(s.counts.ok).toBe(1);
    expect(s.backend).toBe('faulty(fs)');
  });

  it('5xx and 429 are retryable, 4xx is not, and none of them writes', async () => {
    for (const [kind, retryable, statuses] of [
      ['error5xx', true, [500, 502, 503]],
      ['error429', true, [429]],
      ['error4xx', false, [403]],
    ] as const) {
      const inner = new ScriptedStorage();
      const s = new FaultyStorage({ inner, [kind]: 1, seed: 7 });
      for (let i = 0; i < 6; i++) {
        const e = await failure(s.put(request(Buffer.from(`${kind} ${i}`))));
        expect(e.retryable, kind).toBe(retryable);
        expect(statuses).toContain(e.status);
      }
      expect(inner.attempts, kind).toBe(0);
      expect(s.counts[kind]).toBe(6);
    }
  });

  it('a connection reset is retryable; some resets happen after the object was stored (answer lost)', async () => {
    const inner = new ScriptedStorage();
    const s = new FaultyStorage({ inner, reset: 1, seed: 3 });
    for (let i = 0; i < 40; i++) {
      const e = await failure(s.put(request(Buffer.from(`reset ${i}`))));
      expect(e.retryable).toBe(true);
      expect(e.code).toBe('ECONNRESET');
    }
    expect(inner.attempts).toBeGreaterThan(5);
    expect(inner.attempts).toBeLessThan(35);
  });

  it('a hang lasts until the AbortSignal fires and fails retryable; without a signal until hangMaxMs', async () => {
    const inner = new ScriptedStorage();
    const s = new FaultyStorage({ inner, hang: 1, hangMaxMs: 60_000 });
    const t0 = Date.now();
    const e = await failure(s.put(request(Buffer.from('hang'), { signal: AbortSignal.timeout(150) })));
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(140);
    expect(took).toBeLessThan(2000);
    expect(e.retryable).toBe(true);
    const capped = new FaultyStorage({ inner, hang: 1, hangMaxMs: 50 });
    const e2 = await failure(capped.put(request(Buffer.from('hang 2'))));
    expect(e2.retryable).toBe(true);
    expect(e2.code).toBe('ETIMEDOUT');
    expect(inner.attempts).toBe(0);
  });

  it('latency delays the write and honours the AbortSignal', async () => {
    const inner = new ScriptedStorage();
    const s = new FaultyStorage({ inner, latencyMs: [80, 100] });
    const t0 = Date.now();
    await s.put(request(Buffer.from('slow')));
    expect(Date.now() - t0).toBeGreaterThanOrEqual(75);
    const aborted = new FaultyStorage({ inner, latencyMs: [5000, 5000] });
    const t1 = Date.now();
    const e = await failure(aborted.put(request(Buffer.from('slow 2'), { signal: AbortSignal.timeout(50) })));
    expect(Date.now() - t1).toBeLessThan(2000);
    expect(e.retryable).toBe(true);
    expect(aborted.counts.aborted).toBe(1);
    expect(inner.attempts).toBe(1);
  });

  it('a partial write goes through the real fs code path and never leaves a partial final object', async () => {
    const dir = path.join(root, 'partial');
    const fs = new PartialWriteFsStorage({ root: dir, durable: false, chunkBytes: 4096 });
    const s = new FaultyStorage({ inner: fs, partial: 1, seed: 11 });
    const bodies = Array.from({ length: 20 }, (_, i) => Buffer.alloc(64 * 1024 + i, 65 + i));
    for (const body of bodies) {
      const e = await failure(s.put(request(body)));
      expect(e.retryable).toBe(true);
      expect(existsSync(fs.pathOf('sources', `u1/${sha(body)}`))).toBe(false);
    }
    expect(fs.truncatedBytesWritten).toBeGreaterThan(0); // truncated bytes did reach the temporary files
    // an object already stored stays whole when a partial rewrite of the same key breaks
    const healthy = new FaultyStorage({ inner: fs });
    await healthy.put(request(bodies[0]!));
    await failure(s.put(request(bodies[0]!)));
    expect(sha(await readFile(fs.pathOf('sources', `u1/${sha(bodies[0]!)}`)))).toBe(sha(bodies[0]!));
    // no temporary file is left behind
    expect((await readdir(path.join(dir, 'sources', 'u1'))).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('injects each kind at its configured rate (seeded)', async () => {
    const inner = new ScriptedStorage();
    const rates = { error5xx: 0.1, error429: 0.05, reset: 0.03, hang: 0.02, partial: 0.02 };
    const s = new FaultyStorage({ inner, ...rates, hangMaxMs: 0, seed: 42 });
    const n = 4000;
    for (let i = 0; i < n; i++) await s.put(request(Buffer.from(`r${i}`))).catch(() => undefined);
    for (const [k, p] of Object.entries(rates)) {
      const observed = s.counts[k as keyof typeof rates] / n;
      expect(Math.abs(observed - p), k).toBeLessThan(4 * Math.sqrt((p * (1 - p)) / n) + 0.002);
    }
    expect(s.counts.ok).toBeGreaterThan(n * 0.7);
  });
});

describe('FaultyStorage: control file, log file, environment', () => {
  it('re-reads the control file (faults off and on again) and logs one line per write', async () => {
    const controlFile = path.join(root, 'control.json');
    const logFile = path.join(root, 'writes.log');
    const inner = new ScriptedStorage();
    const s = new FaultyStorage({ inner, error5xx: 1, controlFile, logFile });
    await failure(s.put(request(Buffer.from('a'))));
    await writeFile(controlFile, JSON.stringify({ enabled: false }));
    await s.put(request(Buffer.from('a')));
    await s.put(request(Buffer.from('b')));
    await writeFile(controlFile, JSON.stringify({ enabled: true, error5xx: 0, error429: 1 }));
    expect((await failure(s.put(request(Buffer.from('c'))))).status).toBe(429);
    await rm(controlFile);
    expect((await failure(s.put(request(Buffer.from('d'))))).status).toBeGreaterThanOrEqual(500);
    const lines = (await readFile(logFile, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { key: string; outcome: string });
    expect(lines.map((l) => l.outcome)).toEqual(['error5xx', 'ok', 'ok', 'error429', 'error5xx']);
    expect(lines[0]!.key).toBe(`sources/u1/${sha(Buffer.from('a'))}`);
  });

  it('worker processes load it through STORAGE_BACKEND=module, only with STORAGE_FAULTS and never with NODE_ENV=production', async () => {
    const base = { STORAGE_BACKEND: 'module', STORAGE_MODULE: FAULTY_MODULE, STORAGE_FS_ROOT: path.join(root, 'env') };
    await expect(createStorageFromEnv(base)).rejects.toThrow(/test double.*STORAGE_FAULTS/);
    await expect(createStorageFromEnv({ ...base, STORAGE_FAULTS: '{"inner":"fs"}', NODE_ENV: 'production' })).rejects.toThrow(OperationalError);
    await expect(createStorageFromEnv({ ...base, STORAGE_FAULTS: 'not json' })).rejects.toThrow(/JSON/);
    await expect(createStorageFromEnv({ ...base, STORAGE_FAULTS: '{"inner":"ftp"}' })).rejects.toThrow(/inner/);
    await expect(createStorageFromEnv({ ...base, STORAGE_FAULTS: '{"error5xx":1.5}' })).rejects.toThrow(/error5xx/);
    await expect(createStorageFromEnv({ ...base, STORAGE_FAULTS: '{"error5xx":0.6,"reset":0.6}' })).rejects.toThrow(/sum/);
    await expect(createStorageFromEnv({ ...base, STORAGE_FAULTS: '{"latencyMs":[50,10]}' })).rejects.toThrow(/latencyMs/);
    const s = await createStorageFromEnv({ ...base, STORAGE_FAULTS: '{"inner":"fs","latencyMs":[0,50],"error5xx":0.1,"partial":0.02}' });
    expect(s).toBeInstanceOf(FaultyStorage);
    expect(s.backend).toBe('faulty(fs)');
    expect((s as FaultyStorage).inner).toBeInstanceOf(PartialWriteFsStorage);
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
    const s3 = await createStorageFromEnv({ ...base, STORAGE_FAULTS: '{"inner":"s3"}', S3_ENDPOINT: 'http://127.0.0.1:1' });
    expect(s3.backend).toBe('faulty(s3)');
    expect(checkFaultSettings({}).enabled).toBe(true);
  });
});
