import type pg from 'pg';
/** Puts one failed upload job back in the queue; errors say why nothing changed. */
export async function requeueJob(db: pg.Client | pg.Pool, jobId: string): Promise<void> {
  await db.query('SELECT public.requeue_upload_job($1)', [jobId]);
}

/** Requeues every failed job (that failed at or after `since`, when given); returns their ids. */
export async function requeueAllFailed(db: pg.Client | pg.Pool, since?: Date): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT public.requeue_upload_job(q.id) AS id
       FROM public.upload_queue AS q
      WHERE q.status = 'failed'
        AND ($1::timestamptz IS NULL OR q.failed_at >= $1::timestamptz)
        AND EXISTS (SELECT 1 FROM public.upload_queue_payloads AS p WHERE p.job_id = q.id)
      ORDER BY q.failed_at`,
    [since ?? null],
  );
  return rows.map((r) => r.id);
}
