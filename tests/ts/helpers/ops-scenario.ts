import { createHash, randomUUID } from 'node:crypto';
import type pg from 'pg';

export interface ScenarioIds {
  failedJobId: string;
  completedJobId: string;
  quotaUser: string;
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

async function expectRefused(c: pg.Client, sql: string, params: unknown[], code: string): Promise<void> {
  await c.query('SAVEPOINT refused');
  try {
    await c.query(sql, params);
  } catch (err) {
    await c.query('ROLLBACK TO SAVEPOINT refused');
    if ((err as { code?: string }).code === code) return;
    throw err;
  }
  throw new Error(`expected SQLSTATE ${code} from: ${sql}`);
}

const insertSource = `INSERT INTO public.sources (user_id, content_hash, mime_type, storage_url, file_size, storage_status)
                      VALUES ($1::uuid, $2::text, 'text/plain', $1::text || '/' || $2::text, $3, $4) RETURNING id`;

/** Backdates a pending job so that it is due, and claims it. */
async function claimDue(c: pg.Client, jobId: string): Promise<string> {
  await c.query(`UPDATE public.upload_queue SET next_retry_at = now() - interval '1 second' WHERE id = $1`, [jobId]);
  const { rows } = await c.query<{ job_id: string; lease_token: string }>(
    `SELECT job_id, lease_token FROM public.claim_upload_jobs('scenario', 10, interval '1 minute')`,
  );
  const row = rows.find((r) => r.job_id === jobId);
  if (!row) throw new Error(`job ${jobId} was not claimed`);
  return row.lease_token;
}

/**
 * One quota rejection of each kind, one upload retried then stored, one terminal upload failure and one
 * interpretation timeout, all through the project's SQL functions, committed.
 */
export async function runOpsScenario(c: pg.Client): Promise<ScenarioIds> {
  const quotaUser = randomUUID();
  const bigFileUser = randomUUID();
  const uploadUser = randomUUID();
  await c.query('BEGIN');
  await c.query(`SELECT public.set_user_plan($1, 'free')`, [quotaUser]);
  await c.query(
    `UPDATE public.storage_usage SET storage_limit_bytes_override = 1000, interpretation_limit_month_override = 1
      WHERE user_id = $1`,
    [quotaUser],
  );
  const s1 = (await c.query<{ id: string }>(insertSource, [quotaUser, sha256(Buffer.from('one')), 600, 'uploaded'])).rows[0]!.id;
  await expectRefused(c, insertSource, [quotaUser, sha256(Buffer.from('two')), 600, 'uploaded'], 'PT402');
  await expectRefused(c, insertSource, [bigFileUser, sha256(Buffer.from('big')), 200 * 1024 * 1024, 'uploaded'], 'PT413');
  const run = await c.query<{ id: string }>(
    `INSERT INTO public.interpretation_runs (user_id, source_id, interpretation_config, status)
     VALUES ($1, $2, '{}', 'running') RETURNING id`,
    [quotaUser, s1],
  );
  await expectRefused(
    c,
    `INSERT INTO public.interpretation_runs (user_id, source_id, interpretation_config, status) VALUES ($1, $2, '{}', 'pending')`,
    [quotaUser, s1],
    'PT402',
  );
  await c.query(`UPDATE public.interpretation_runs SET timeout_at = now() - interval '1 minute' WHERE id = $1`, [run.rows[0]!.id]);
  await c.query('COMMIT');
  await c.query('SELECT public.cleanup_stale_interpretations()');

  // an upload that fails once, then is stored
  const ok = Buffer.from('retried then stored');
  const s4 = (await c.query<{ id: string }>(insertSource, [uploadUser, sha256(ok), ok.length, 'pending'])).rows[0]!.id;
  const completedJobId = (await c.query<{ id: string }>('SELECT public.enqueue_upload($1, $2, $3) AS id', [s4, ok, 'storage unreachable'])).rows[0]!.id;
  let token = await claimDue(c, completedJobId);
  await c.query(`SELECT public.fail_upload_job($1, $2, 'storage timeout after 10 s', true)`, [completedJobId, token]);
  token = await claimDue(c, completedJobId);
  await c.query('SELECT public.complete_upload_job($1, $2)', [completedJobId, token]);

  // an upload refused for good
  const bad = Buffer.from('refused by storage');
  const s5 = (await c.query<{ id: string }>(insertSource, [uploadUser, sha256(bad), bad.length, 'pending'])).rows[0]!.id;
  const failedJobId = (await c.query<{ id: string }>('SELECT public.enqueue_upload($1, $2) AS id', [s5, bad])).rows[0]!.id;
  token = await claimDue(c, failedJobId);
  await c.query(`SELECT public.fail_upload_job($1, $2, 'storage answered 403 Forbidden', false)`, [failedJobId, token]);

  return { failedJobId, completedJobId, quotaUser };
}
