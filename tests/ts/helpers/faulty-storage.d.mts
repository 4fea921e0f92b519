// Types of faulty-storage.mjs, the fault-injecting storage test double.
import { FsStorage, type PutRequest, type StorageAdapter } from 'neotoma-ops';

/** Fault kinds, in the order their probabilities are stacked. */
export const FAULT_KINDS: readonly ['error5xx', 'error429', 'reset', 'hang', 'partial', 'error4xx'];
export type FaultKind = (typeof FAULT_KINDS)[number];
/** What one put did: `ok` (passed to the inner adapter, which succeeded), `inner_error`, or the injected fault. */
export type FaultOutcome = 'ok' | 'inner_error' | 'aborted' | FaultKind;
/** Counts of what the adapter did, by outcome. */
export type FaultCounts = Record<FaultOutcome, number>;

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

export type CheckedFaultSettings = Required<Omit<FaultSettings, 'enabled'>> & { enabled: boolean };

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

/** Checks fault settings (probabilities in 0..1 summing to at most 1, latency a [min, max] pair). */
export function checkFaultSettings(settings: FaultSettings): CheckedFaultSettings;

/** The fs adapter whose chunk writer breaks mid-file inside a partial-write fault. */
export class PartialWriteFsStorage extends FsStorage {
  /** Bytes written into temporary files by partial-write faults (for tests). */
  truncatedBytesWritten: number;
}

/** Wraps `inner` and injects faults; every error it throws is a classified StorageError. */
export class FaultyStorage implements StorageAdapter {
  readonly backend: string;
  readonly inner: StorageAdapter;
  readonly counts: FaultCounts;
  constructor(options: FaultyStorageOptions);
  /** Replaces the settings (the control file, when there is one, still overrides them). */
  configure(settings: FaultSettings): void;
  /** The settings in force now (after the control file, if any). */
  settings(): Readonly<CheckedFaultSettings>;
  put(request: PutRequest): Promise<void>;
  close(): Promise<void>;
}

/**
 * Entry of the storage extension point (STORAGE_BACKEND=module): the faulty adapter described by `STORAGE_FAULTS`
 * (JSON: the fault settings, `seed`, `controlFile`, `logFile`, and `inner`: fs (default), s3 or supabase).
 */
export function createStorage(env: Record<string, string | undefined>): Promise<FaultyStorage>;
