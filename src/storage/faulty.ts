/**
 * TEST BACKEND — never use in production. A storage adapter that wraps another one and injects faults:
 * latency, HTTP 5xx, HTTP 429, connection resets (before or after the inner write), hangs that last until the
 * request's AbortSignal fires, partial writes (a truncated object is written, then the write fails) and,
 * optionally, non-retryable 4xx answers. Used by the fault and soak tests; selectable from the environment
 * (`STORAGE_BACKEND=faulty` plus `STORAGE_FAULTS='{"inner":"fs",...}'`) so worker processes can use it, but
 * only with both variables set and never with NODE_ENV=production.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { readFileSync, statSync } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { OperationalError } from '../errors.js';
import { toStorageError } from './classify.js';
import { FsStorage, type FsStorageOptions } from './fs.js';
import type { PutRequest, StorageAdapter } from './types.js';

/** Fault kinds, in the order their probabilities are stacked. */
export const FAULT_KINDS = ['error5xx', 'error429', 'reset', 'hang', 'partial', 'error4xx'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];
/** What one put did: `ok` (passed to the inner adapter, which succeeded), `inner_error`, or the injected fault. */
export type FaultOutcome = 'ok' | 'inner_error' | 'aborted' | FaultKind;

export interface FaultSettings {
  /** false = pass every write straight through (no latency, no faults). Default true. */
  enabled?: boolean;
  /** Added delay before each write, uniform in [min, max] ms (honours the AbortSignal). Default [0, 0]. */
  latencyMs?: [number, number];
  /** Probability (0..1) of answering HTTP 5xx (500/502/503, retryable) without writing. */
  error5xx?: number;
  /** Probability of answering HTTP 429 (rate limited, retryable) without writing. */
  error429?: number;
  /** Probability of a connection reset (ECONNRESET, retryable): half before the inner write, half after it
   *  (the object is stored but the answer is lost, so the caller retries a write that had succeeded). */
  reset?: number;
  /** Probability of hanging until the request's AbortSignal fires (upload timeout), or `hangMaxMs`. */
  hang?: number;
  /** Probability of a partial write: part of the bytes is written, then the connection breaks (ECONNRESET).
   *  With the fs backend the truncated bytes really go to the temporary file and the real fs code path
   *  fails, so the test proves the final object is never partial. */
  partial?: number;
  /** Probability of a non-retryable HTTP 403 answer. Default 0. */
  error4xx?: number;
  /** Longest hang when the request has no AbortSignal (default 120000 ms). */
  hangMaxMs?: number;
}

export interface FaultyStorageOptions extends FaultSettings {
  inner: StorageAdapter;
  /** Seed of the fault dice (default: random). */
  seed?: number;
  /** JSON file re-read when it changes; its settings override these (e.g. `{"enabled":false}` to heal storage). */
  controlFile?: string;
  /** File that gets one JSON line per write: `{"t","pid","key","outcome","stored","ms"}` (`stored`: the inner
   *  adapter stored the object, also when the answer was then lost), for counting writes per key. */
  logFile?: string;
}

/** Settings of `STORAGE_FAULTS` (JSON): the FaultyStorageOptions without `inner` adapter, plus which one. */
export interface FaultEnvConfig extends FaultSettings {
  /** The wrapped backend: `fs` (default), `s3` or `supabase`, configured by the usual variables. */
  inner?: 'fs' | 's3' | 'supabase';
  seed?: number;
  controlFile?: string;
  logFile?: string;
}

/** Deterministic dice (mulberry32). */
function dice(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function probability(value: unknown, name: string): number {
  if (value === undefined) return 0;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 1) {
    throw new OperationalError(`storage faults: ${name} must be a probability between 0 and 1, got ${JSON.stringify(value)}.`);
  }
  return value;
}

/** Checks fault settings (probabilities in 0..1 summing to at most 1, latency a [min, max] pair). */
export function checkFaultSettings(s: FaultSettings): Required<Omit<FaultSettings, 'enabled'>> & { enabled: boolean } {
  const p = Object.fromEntries(FAULT_KINDS.map((k) => [k, probability(s[k], k)])) as Record<FaultKind, number>;
  const sum = FAULT_KINDS.reduce((n, k) => n + p[k], 0);
  if (sum > 1 + 1e-9) throw new OperationalError(`storage faults: the fault probabilities sum to ${sum}, more than 1.`);
  const lat = s.latencyMs ?? [0, 0];
  if (!Array.isArray(lat) || lat.length !== 2 || !lat.every((v) => typeof v === 'number' && Number.isFinite(v) && v >= 0) || lat[0] > lat[1]) {
    throw new OperationalError(`storage faults: latencyMs must be [min, max] milliseconds with 0 <= min <= max, got ${JSON.stringify(lat)}.`);
  }
  const hangMaxMs = s.hangMaxMs ?? 120_000;
  if (!Number.isFinite(hangMaxMs) || hangMaxMs < 0) throw new OperationalError('storage faults: hangMaxMs must be >= 0.');
  return { enabled: s.enabled ?? true, latencyMs: [lat[0], lat[1]], hangMaxMs, ...p };
}

function injected(kind: string, message: string, extra: { status?: number; code?: string }): Error {
  return Object.assign(new Error(`injected ${kind}: ${message}`), extra);
}

/** Resolves after `ms`; rejects with the signal's reason as soon as it aborts. */
function wait(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = (): void => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Byte offset at which the current fs write breaks (set around one put). */
const partialCut = new AsyncLocalStorage<number>();

/**
 * The real fs adapter with one seam used: inside a partial-write fault, the chunk writer writes the bytes up to
 * the cut into the temporary file and then fails like a broken connection. Everything else (temporary file,
 * clean-up, rename only after a complete write) is FsStorage's own code.
 */
export class PartialWriteFsStorage extends FsStorage {
  /** Bytes written into temporary files by partial-write faults (for tests). */
  truncatedBytesWritten = 0;

  protected override async writeChunk(fh: FileHandle, chunk: Buffer, position: number): Promise<void> {
    const cut = partialCut.getStore();
    if (cut === undefined || position + chunk.length <= cut) return super.writeChunk(fh, chunk, position);
    const keep = Math.max(0, cut - position);
    if (keep > 0) await super.writeChunk(fh, chunk.subarray(0, keep), position);
    this.truncatedBytesWritten += keep;
    throw injected('partial', `connection broken after ${cut} bytes`, { code: 'ECONNRESET' });
  }
}

/** Counts of what the adapter did, by outcome. */
export type FaultCounts = Record<FaultOutcome, number>;

/**
 * TEST BACKEND: wraps `inner` and injects faults (see FaultSettings). Every error it throws is a classified
 * StorageError, as the real adapters' are.
 */
export class FaultyStorage implements StorageAdapter {
  readonly backend: string;
  readonly inner: StorageAdapter;
  readonly counts: FaultCounts = { ok: 0, inner_error: 0, aborted: 0, error5xx: 0, error429: 0, reset: 0, hang: 0, partial: 0, error4xx: 0 };
  private base: ReturnType<typeof checkFaultSettings>;
  private current: ReturnType<typeof checkFaultSettings>;
  private readonly random: () => number;
  private readonly controlFile: string | undefined;
  private readonly logFile: string | undefined;
  private controlStamp = '';

  constructor(options: FaultyStorageOptions) {
    this.inner = options.inner;
    this.backend = `faulty(${options.inner.backend})`;
    this.base = checkFaultSettings(options);
    this.current = this.base;
    this.random = dice(options.seed ?? Math.floor(Math.random() * 2 ** 32));
    this.controlFile = options.controlFile;
    this.logFile = options.logFile;
  }

  /** Replaces the settings (the control file, when there is one, still overrides them). */
  configure(settings: FaultSettings): void {
    this.base = checkFaultSettings(settings);
    this.current = this.base;
    this.controlStamp = '';
  }

  /** The settings in force now (after the control file, if any). */
  settings(): Readonly<ReturnType<typeof checkFaultSettings>> {
    this.refresh();
    return this.current;
  }

  /** Re-reads the control file when its size or mtime changed; a missing file means "no override". */
  private refresh(): void {
    if (!this.controlFile) return;
    let stamp = 'missing';
    try {
      const st = statSync(this.controlFile);
      stamp = `${st.mtimeMs}:${st.size}`;
    } catch {
      // no control file: the base settings apply
    }
    if (stamp === this.controlStamp) return;
    this.controlStamp = stamp;
    if (stamp === 'missing') {
      this.current = this.base;
      return;
    }
    try {
      const override = JSON.parse(readFileSync(this.controlFile, 'utf8')) as FaultSettings;
      this.current = checkFaultSettings({ ...this.base, ...override });
    } catch {
      this.controlStamp = ''; // a half-written file: read it again next time
    }
  }

  private pick(s: ReturnType<typeof checkFaultSettings>): FaultKind | undefined {
    const r = this.random();
    let acc = 0;
    for (const k of FAULT_KINDS) {
      acc += s[k];
      if (r < acc) return k;
    }
    return undefined;
  }

  async put(request: PutRequest): Promise<void> {
    const started = Date.now();
    let outcome: FaultOutcome = 'ok';
    let stored = false;
    try {
      await this.attempt(request, (o) => (outcome = o), () => {
        stored = true;
      });
    } catch (err) {
      if (outcome === 'ok') outcome = request.signal?.aborted ? 'aborted' : 'inner_error';
      throw toStorageError(err, this.backend, `write of ${request.bucket}/${request.key}`);
    } finally {
      this.counts[outcome]++;
      if (this.logFile) {
        const key = `${request.bucket}/${request.key}`;
        const line = JSON.stringify({ t: started, pid: process.pid, key, outcome, stored, ms: Date.now() - started });
        await appendFile(this.logFile, `${line}\n`).catch(() => undefined);
      }
    }
  }

  private async attempt(request: PutRequest, mark: (o: FaultOutcome) => void, wrote: () => void): Promise<void> {
    const s = this.settings();
    if (!s.enabled) return this.inner.put(request).then(wrote);
    const [lo, hi] = s.latencyMs;
    const latency = lo + this.random() * (hi - lo);
    if (latency > 0) await wait(latency, request.signal);
    const fault = this.pick(s);
    if (fault) mark(fault);
    switch (fault) {
      case undefined:
        return this.inner.put(request).then(wrote);
      case 'error5xx': {
        const status = [500, 502, 503][Math.floor(this.random() * 3)]!;
        throw injected('5xx', `storage answered ${status}`, { status });
      }
      case 'error429':
        throw injected('429', 'storage answered 429 Too Many Requests', { status: 429 });
      case 'error4xx':
        throw injected('4xx', 'storage answered 403 Forbidden', { status: 403 });
      case 'reset': {
        if (this.random() < 0.5) await this.inner.put(request).then(wrote); // stored, but the answer is lost
        throw injected('reset', 'connection reset by peer', { code: 'ECONNRESET' });
      }
      case 'hang':
        await wait(s.hangMaxMs, request.signal);
        throw injected('hang', `no answer within ${s.hangMaxMs} ms`, { code: 'ETIMEDOUT' });
      case 'partial':
        return this.partial(request);
    }
  }

  /** Writes a truncated object, then fails: through the fs code path when the inner adapter is fs. */
  private async partial(request: PutRequest): Promise<void> {
    const cut = Math.floor(this.random() * request.body.length);
    if (this.inner instanceof PartialWriteFsStorage) {
      await partialCut.run(cut, () => this.inner.put(request));
      throw injected('partial', 'the write completed although it should have broken', { code: 'EIO' });
    }
    // Other backends: the request is aborted in flight (the connection drops mid-body).
    const drop = new AbortController();
    const signal = request.signal ? AbortSignal.any([request.signal, drop.signal]) : drop.signal;
    setTimeout(() => drop.abort(injected('partial', 'connection dropped mid-body', { code: 'ECONNRESET' })), 1);
    await this.inner.put({ ...request, signal });
    throw injected('partial', 'connection dropped after the body was sent', { code: 'ECONNRESET' });
  }

  async close(): Promise<void> {
    await this.inner.close?.();
  }
}

/** Builds the faulty adapter from `STORAGE_FAULTS` (JSON); `makeInner` builds the wrapped non-fs backend. */
export function faultyStorageFromEnv(
  env: Record<string, string | undefined>,
  fsOptions: FsStorageOptions,
  makeInner: (backend: 's3' | 'supabase') => StorageAdapter,
): FaultyStorage {
  if (env.NODE_ENV?.trim() === 'production') {
    throw new OperationalError('STORAGE_BACKEND=faulty is a test backend that injects storage failures; it is refused when NODE_ENV=production.');
  }
  const raw = env.STORAGE_FAULTS?.trim();
  if (!raw) {
    throw new OperationalError(
      'STORAGE_BACKEND=faulty is a test backend (it injects storage failures) and needs STORAGE_FAULTS, a JSON object such as ' +
        '\'{"inner":"fs","error5xx":0.1}\'. For real storage choose fs, s3 or supabase.',
    );
  }
  let config: FaultEnvConfig;
  try {
    config = JSON.parse(raw) as FaultEnvConfig;
  } catch (err) {
    throw new OperationalError(`STORAGE_FAULTS must be a JSON object: ${(err as Error).message}`);
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config)) throw new OperationalError('STORAGE_FAULTS must be a JSON object.');
  const innerName = config.inner ?? 'fs';
  if (!['fs', 's3', 'supabase'].includes(innerName)) {
    throw new OperationalError(`STORAGE_FAULTS.inner must be fs, s3 or supabase, got ${JSON.stringify(config.inner)}.`);
  }
  const inner = innerName === 'fs' ? new PartialWriteFsStorage(fsOptions) : makeInner(innerName as 's3' | 'supabase');
  const { inner: _ignored, ...settings } = config;
  return new FaultyStorage({ ...settings, inner });
}
