import type pg from 'pg';
import { queue } from './queue.js';

export interface Waiting {
  jobId: string;
  token: string;
  storageUrl: string | null;
  resolve: (completed: boolean) => void;
  reject: (err: unknown) => void;
}

/**
 * Completes uploads in batches without waiting for a batch to fill: a completion is sent at once when no batch is
 * being sent; completions that arrive while one is in flight are sent together as soon as it returns (at most
 * `maxBatch` per call). Each job stays fenced by its own lease token (`complete_upload_jobs`). A failed call
 * rejects every completion in it, and each caller retries its own.
 */
export class CompletionBatcher {
  private waiting: Waiting[] = [];
  private sending = false;
  private scheduled = false;

  constructor(
    private readonly db: pg.Pool,
    readonly maxBatch = 64,
  ) {
    if (!Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > 1000) {
      throw new RangeError(
        `completionBatchSize must be an integer from 1 to 1000 (complete_upload_jobs takes at most 1000 jobs), got ${maxBatch}`,
      );
    }
  }

  complete(jobId: string, token: string, storageUrl: string | null): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.waiting.push({ jobId, token, storageUrl, resolve, reject });
      // Sent after the current turn, so that a claim of one job woken by the same finished upload can take it
      // along first (take()): one call records it and fills the slot it freed.
      if (!this.sending && !this.scheduled) {
        this.scheduled = true;
        setImmediate(() => {
          this.scheduled = false;
          if (!this.sending) void this.send();
        });
      }
    });
  }

  /**
   * Up to `maxBatch` completions nobody is sending yet, for a caller that records them in a call of its own; it
   * must then call `settle()` with the answers (or the error) for exactly these.
   */
  take(): Waiting[] {
    return this.waiting.splice(0, this.maxBatch);
  }

  settle(taken: readonly Waiting[], answer: { completed: readonly boolean[] } | { error: unknown }): void {
    if ('error' in answer) for (const w of taken) w.reject(answer.error);
    else taken.forEach((w, i) => w.resolve(answer.completed[i] === true));
  }

  private async send(): Promise<void> {
    this.sending = true;
    try {
      while (this.waiting.length > 0) {
        const batch = this.waiting.splice(0, this.maxBatch);
        try {
          const done = await queue.completeMany(this.db, batch);
          batch.forEach((w, i) => w.resolve(done[i] === true));
        } catch (err) {
          for (const w of batch) w.reject(err);
        }
      }
    } finally {
      this.sending = false;
    }
  }
}
