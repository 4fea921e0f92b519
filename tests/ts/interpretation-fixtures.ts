import { randomBytes, randomUUID } from 'node:crypto';
import type pg from 'pg';

export interface RunRow {
  status: string;
  error_message: string | null;
  completed_at: Date | null;
  heartbeat_at: Date | null;
  timeout_at: Date | null;
  observations_created: number;
  unknown_fields_count: number;
}

/** A new user with one source and one interpretation run in `status`; returns the run id. */
export async function newRun(db: pg.Client, status: 'pending' | 'running' = 'running'): Promise<string> {
  const userId = randomUUID();
  const hash = randomBytes(32).toString('hex');
  const { rows } = await db.query<{ id: string }>(
    `WITH s AS (
       INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size)
       VALUES ($1::uuid, $2, 'text/plain', $1::text || '/' || $2, 10)
       RETURNING id, user_id
     )
     INSERT INTO public.interpretation_runs (user_id, source_id, interpretation_config, status)
     SELECT s.user_id, s.id, '{"model":"test"}', $3 FROM s
     RETURNING id`,
    [userId, hash, status],
  );
  return rows[0]!.id;
}

/** Moves a run's deadline into the past, as if its worker had been silent for longer than the timeout. */
export async function makeStale(db: pg.Client, runId: string): Promise<void> {
  await db.query(
    `UPDATE public.interpretation_runs
        SET timeout_at = now() - interval '1 minute', heartbeat_at = now() - interval '11 minutes'
      WHERE id = $1`,
    [runId],
  );
}

export async function runRow(db: pg.Client, runId: string): Promise<RunRow> {
  const { rows } = await db.query<RunRow>(
    `SELECT status, error_message, completed_at, heartbeat_at, timeout_at, observations_created, unknown_fields_count
       FROM public.interpretation_runs WHERE id = $1`,
    [runId],
  );
  if (!rows[0]) throw new Error(`run ${runId} not found`);
  return rows[0];
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
