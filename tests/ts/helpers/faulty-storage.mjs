/**
 * TEST DOUBLE — not part of the package. A storage adapter that wraps another one and injects faults: latency,
 * HTTP 5xx, HTTP 429, connection resets (before or after the inner write), hangs that last until the request's
 * AbortSignal fires, partial writes (a truncated object is written, then the write fails) and, optionally,
 * non-retryable 4xx answers. Used by the fault and soak tests, in the test process (`new FaultyStorage(…)`) and in
 * worker processes through the package's storage extension point (docs/storage.md, "Your own adapter"):
 *
 *   STORAGE_BACKEND=module STORAGE_MODULE=tests/ts/helpers/faulty-storage.mjs STORAGE_FAULTS='{"inner":"fs",…}'
 *
 * An ES module, because worker processes run the compiled package and load no TypeScript. It uses the package
 * only through its public API ('neotoma-ops': the built package in a worker process, the source under vitest).
 * Types: faulty-storage.d.mts.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { readFileSync, statSync } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import { FsStorage, OperationalError, createStorageFromEnv, defaultFsRoot, toStorageError } from 'neotoma-ops';
import { seededRandom } from './seeded-random.mjs';

/** Fault kinds, in the order their probabilities are stacked. */
export const FAULT_KINDS = ['error5xx', 'error429', 'reset', 'hang', 'partial', 'error4xx'];

function probability(value, name) {
  if (value === undefined) return 0;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 1) {
    throw new OperationalError(`storage faults: ${name} must be a probability between 0 and 1, got ${JSON.stringify(value)}.`);
  }
  return value;
}

/** Checks fault settings (probabilities in 0..1 summing to at most 1, latency a [min, max] pair). */
export function checkFaultSettings(s) {
  const p = Object.fromEntries(FAULT_KINDS.map((k) => [k, probability(s[k], k)]));
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

function injected(kind, message, extra) {
  return Object.assign(new Error(`injected ${kind}: ${message}`), extra);
}

/** Resolves after `ms`; rejects with the signal's reason as soon as it aborts. */
function wait(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Byte offset at which the current fs write breaks (set around one put). */
const partialCut = new AsyncLocalStorage();

/**
 * The real fs adapter with one seam used: inside a partial-write fault, the chunk writer writes the bytes up to
 * the cut into the temporary file and then fails like a broken connection. Everything else (temporary file,
 * clean-up, rename only after a complete write) is FsStorage's own code.
 */
export class PartialWriteFsStorage extends FsStorage {
  /** Bytes written into temporary files by partial-write faults (for tests). */
  truncatedBytesWritten = 0;

  async writeChunk(fh, chunk, position) {
    const cut = partialCut.getStore();
    if (cut === undefined || position + chunk.length <= cut) return super.writeChunk(fh, chunk, position);
    const keep = Math.max(0, cut - position);
    if (keep > 0) await super.writeChunk(fh, chunk.subarray(0, keep), position);
    this.truncatedBytesWritten += keep;
    throw injected('partial', `connection broken after ${cut} bytes`, { code: 'ECONNRESET' });
  }
}

/**
 * Wraps `inner` and injects faults (see FaultSettings in faulty-storage.d.mts). Every error it throws is a
 * classified StorageError, as the real adapters' are.
 */
export class FaultyStorage {
  counts = { ok: 0, inner_error: 0, aborted: 0, error5xx: 0, error429: 0, reset: 0, hang: 0, partial: 0, error4xx: 0 };
  #base;
  #current;
  #random;
  #controlFile;
  #logFile;
  #controlStamp = '';

  constructor(options) {
    this.inner = options.inner;
    this.backend = `faulty(${options.inner.backend})`;
    this.#base = checkFaultSettings(options);
    this.#current = this.#base;
    this.#random = seededRandom(options.seed ?? Math.floor(Math.random() * 2 ** 32));
    this.#controlFile = options.controlFile;
    this.#logFile = options.logFile;
  }

  /** Replaces the settings (the control file, when there is one, still overrides them). */
  configure(settings) {
    this.#base = checkFaultSettings(settings);
    this.#current = this.#base;
    this.#controlStamp = '';
  }

  /** The settings in force now (after the control file, if any). */
  settings() {
    this.#refresh();
    return this.#current;
  }

  /** Re-reads the control file when its size or mtime changed; a missing file means "no override". */
  #refresh() {
    if (!this.#controlFile) return;
    let stamp = 'missing';
    try {
      const st = statSync(this.#controlFile);
      stamp = `${st.mtimeMs}:${st.size}`;
    } catch {
      // no control file: the base settings apply
    }
    if (stamp === this.#controlStamp) return;
    this.#controlStamp = stamp;
    if (stamp === 'missing') {
      this.#current = this.#base;
      return;
    }
    try {
      const override = JSON.parse(readFileSync(this.#controlFile, 'utf8'));
      this.#current = checkFaultSettings({ ...this.#base, ...override });
    } catch {
      this.#controlStamp = ''; // a half-written file: read it again next time
    }
  }

  #pick(s) {
    const r = this.#random();
    let acc = 0;
    for (const k of FAULT_KINDS) {
      acc += s[k];
      if (r < acc) return k;
    }
    return undefined;
  }

  async put(request) {
    const started = Date.now();
    let outcome = 'ok';
    let stored = false;
    try {
      await this.#attempt(request, (o) => (outcome = o), () => {
        stored = true;
      });
    } catch (err) {
      if (outcome === 'ok') outcome = request.signal?.aborted ? 'aborted' : 'inner_error';
      throw toStorageError(err, this.backend, `write of ${request.bucket}/${request.key}`);
    } finally {
      this.counts[outcome]++;
      if (this.#logFile) {
        const key = `${request.bucket}/${request.key}`;
        const line = JSON.stringify({ t: started, pid: process.pid, key, outcome, stored, ms: Date.now() - started });
        await appendFile(this.#logFile, `${line}\n`).catch(() => undefined);
      }
    }
  }

  async #attempt(request, mark, wrote) {
    const s = this.settings();
    if (!s.enabled) return this.inner.put(request).then(wrote);
    const [lo, hi] = s.latencyMs;
    const latency = lo + this.#random() * (hi - lo);
    if (latency > 0) await wait(latency, request.signal);
    const fault = this.#pick(s);
    if (fault) mark(fault);
    switch (fault) {
      case undefined:
        return this.inner.put(request).then(wrote);
      case 'error5xx': {
        const status = [500, 502, 503][Math.floor(this.#random() * 3)];
        throw injected('5xx', `storage answered ${status}`, { status });
      }
      case 'error429':
        throw injected('429', 'storage answered 429 Too Many Requests', { status: 429 });
      case 'error4xx':
        throw injected('4xx', 'storage answered 403 Forbidden', { status: 403 });
      case 'reset': {
        if (this.#random() < 0.5) await this.inner.put(request).then(wrote); // stored, but the answer is lost
        throw injected('reset', 'connection reset by peer', { code: 'ECONNRESET' });
      }
      case 'hang':
        await wait(s.hangMaxMs, request.signal);
        throw injected('hang', `no answer within ${s.hangMaxMs} ms`, { code: 'ETIMEDOUT' });
      case 'partial':
        return this.#partial(request);
    }
  }

  /** Writes a truncated object, then fails: through the fs code path when the inner adapter is fs. */
  async #partial(request) {
    const cut = Math.floor(this.#random() * request.body.length);
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

  async close() {
    await this.inner.close?.();
  }
}

/**
 * The extension point's entry: the faulty adapter from `STORAGE_FAULTS` (JSON: the fault settings, plus `inner`,
 * the wrapped backend, `fs` by default, configured by the usual variables). Refused when NODE_ENV=production.
 */
export async function createStorage(env) {
  if (env.NODE_ENV?.trim() === 'production') {
    throw new OperationalError('faulty-storage.mjs is a test double that injects storage failures; it is refused when NODE_ENV=production.');
  }
  const raw = env.STORAGE_FAULTS?.trim();
  if (!raw) {
    throw new OperationalError(
      'faulty-storage.mjs is a test double (it injects storage failures) and needs STORAGE_FAULTS, a JSON object such as ' +
        '\'{"inner":"fs","error5xx":0.1}\'. For real storage choose STORAGE_BACKEND fs, s3 or supabase.',
    );
  }
  let config;
  try {
    config = JSON.parse(raw);
  } catch (err) {
    throw new OperationalError(`STORAGE_FAULTS must be a JSON object: ${err.message}`);
  }
  if (config === null || typeof config !== 'object' || Array.isArray(config)) throw new OperationalError('STORAGE_FAULTS must be a JSON object.');
  const { inner: innerName = 'fs', ...settings } = config;
  if (!['fs', 's3', 'supabase'].includes(innerName)) {
    throw new OperationalError(`STORAGE_FAULTS.inner must be fs, s3 or supabase, got ${JSON.stringify(innerName)}.`);
  }
  const inner = innerName === 'fs'
    ? new PartialWriteFsStorage({ root: env.STORAGE_FS_ROOT?.trim() || defaultFsRoot() })
    : await createStorageFromEnv({ ...env, STORAGE_BACKEND: innerName });
  return new FaultyStorage({ ...settings, inner });
}
