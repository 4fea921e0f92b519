import type pg from 'pg';
import { queue } from './queue.js';

interface Waiting {
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
      if (!this.sending) void this.send();
    });
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
