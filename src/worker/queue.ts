import type pg from 'pg';

/**
 * A job handed out by `claim_upload_jobs_with_content`; every later call presents its `lease_token`. `content` holds
 * the queued bytes when they came with the claim (small payloads, by the function's own limits), else null: read
 * them with `content*()`.
 */
export interface ClaimedJob {
  job_id: string;
  lease_token: string;
  source_id: string;
  user_id: string;
  bucket: string;
  storage_path: string;
  content_hash: string;
  byte_size: string;
  mime_type: string;
  retry_count: number;
  locked_until: Date;
  content: Buffer | null;
}

type Db = pg.Pool | pg.ClientBase;

function interval(seconds: number): string {
  return `${seconds} seconds`;
}

/**
 * Typed calls of the queue functions (docs/upload-queue.md, "SQL interface"). Stale tokens come back as null /
 * false, never as errors.
 */
export const queue = {
  async claim(db: Db, workerId: string, limit: number, leaseSeconds: number): Promise<ClaimedJob[]> {
    // unnamed statements only: a named one lives on one server session, which a transaction-mode pooler does not
    // keep for us (the functions' own plans are cached inside the database either way)
    const { rows } = await db.query<ClaimedJob>({
      text: `SELECT job_id, lease_token, source_id, user_id, bucket, storage_path, content_hash, byte_size, mime_type,
                    retry_count, locked_until, content
               FROM public.claim_upload_jobs_with_content($1, $2, $3::interval)`,
      values: [workerId, limit, interval(leaseSeconds)],
    });
    return rows;
  },

  /** The queued bytes, or null when the lease is no longer ours. */
  async content(db: Db, jobId: string, token: string): Promise<Buffer | null> {
    const { rows } = await db.query<{ content: Buffer | null }>('SELECT public.upload_job_content($1, $2) AS content', [jobId, token]);
    return rows[0]?.content ?? null;
  },

  /**
   * The queued bytes read in slices of `sliceBytes` into one buffer of `byteSize` (peak memory ≈ the payload plus
   * one slice, instead of the payload plus its hex text), or null when the lease is no longer ours.
   */
  async contentInSlices(db: Db, jobId: string, token: string, byteSize: number, sliceBytes: number): Promise<Buffer | null> {
    const out = Buffer.allocUnsafe(byteSize);
    let offset = 0;
    while (offset < byteSize) {
      const length = Math.min(sliceBytes, byteSize - offset);
      const { rows } = await db.query<{ slice: Buffer | null }>('SELECT public.upload_job_content_range($1, $2, $3, $4) AS slice', [
        jobId,
        token,
        offset,
        length,
      ]);
      const slice = rows[0]?.slice;
      if (slice === null || slice === undefined) return null;
      if (slice.length !== length) throw new Error(`job ${jobId}: payload slice at ${offset} has ${slice.length} bytes, expected ${length}`);
      slice.copy(out, offset);
      offset += length;
    }
    return out;
  },

  /** The new lease end, or null when the lease is no longer ours. */
  async extend(db: Db, jobId: string, token: string, leaseSeconds: number): Promise<Date | null> {
    const { rows } = await db.query<{ until: Date | null }>('SELECT public.extend_upload_lease($1, $2, $3::interval) AS until', [
      jobId,
      token,
      interval(leaseSeconds),
    ]);
    return rows[0]?.until ?? null;
  },

  /** Completes several jobs in one transaction, each fenced by its own token; one flag per job, in order. */
  async completeMany(db: Db, jobs: readonly { jobId: string; token: string; storageUrl: string | null }[]): Promise<boolean[]> {
    const { rows } = await db.query<{ completed: boolean }>({
      text: 'SELECT completed FROM public.complete_upload_jobs($1::uuid[], $2::uuid[], $3::text[])',
      values: [jobs.map((j) => j.jobId), jobs.map((j) => j.token), jobs.map((j) => j.storageUrl)],
    });
    if (rows.length !== jobs.length) throw new Error(`complete_upload_jobs answered ${rows.length} rows for ${jobs.length} jobs`);
    return rows.map((r) => r.completed === true);
  },

  /**
   * `completeMany` then `claim` in one call and one transaction (`complete_and_claim_upload_jobs`): one flag per
   * completed job, in order, and the jobs claimed.
   */
  async completeAndClaim(
    db: Db,
    finished: readonly { jobId: string; token: string; storageUrl: string | null }[],
    workerId: string,
    limit: number,
    leaseSeconds: number,
  ): Promise<{ completed: boolean[]; jobs: ClaimedJob[] }> {
    const { rows } = await db.query<ClaimedJob & { completed: boolean | null }>({
      text: `SELECT job_id, completed, lease_token, source_id, user_id, bucket, storage_path, content_hash, byte_size,
                    mime_type, retry_count, locked_until, content
               FROM public.complete_and_claim_upload_jobs($1::uuid[], $2::uuid[], $3::text[], $4, $5, $6::interval)`,
      values: [finished.map((j) => j.jobId), finished.map((j) => j.token), finished.map((j) => j.storageUrl), workerId, limit,
        interval(leaseSeconds)],
    });
    const answered = rows.slice(0, finished.length);
    if (answered.length !== finished.length || answered.some((r, i) => r.completed === null || r.job_id !== finished[i]?.jobId)) {
      throw new Error(`complete_and_claim_upload_jobs did not answer each of the ${finished.length} completions in order`);
    }
    const jobs = rows.slice(finished.length).map(({ completed: _, ...job }) => job);
    return { completed: answered.map((r) => r.completed === true), jobs };
  },

  async fail(db: Db, jobId: string, token: string, message: string, retryable: boolean): Promise<boolean> {
    const { rows } = await db.query<{ ok: boolean }>('SELECT public.fail_upload_job($1, $2, $3, $4) AS ok', [
      jobId,
      token,
      message.slice(0, 2000),
      retryable,
    ]);
    return rows[0]?.ok === true;
  },
};
