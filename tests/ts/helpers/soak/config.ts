export interface SoakOptions {
  seconds: number;
  workers?: number;
  users?: number;
  /** Files offered per second by the producer. */
  filesPerSecond?: number;
  /** Interpretation runs started per second. */
  runsPerSecond?: number;
  /** Driver tick (backdating, process_upload_queue, cleanup_stale_interpretations, samples). */
  tickMs?: number;
  log?: (line: string) => void;
}

export interface Invariant {
  name: string;
  held: boolean;
  detail: string;
}

export interface SoakReport {
  seconds: number;
  wallSeconds: number;
  figures: Record<string, number | string>;
  faults: Record<string, number>;
  invariants: Invariant[];
  unexpectedErrors: string[];
}

export const RUN_TIMEOUT_SECONDS = 5;
export const LEASE_SECONDS = 3;

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
