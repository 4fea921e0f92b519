import pg from 'pg';
import { connect } from '../db/connect.js';
import { OperationalError } from '../errors.js';
import { explainDbError, requireUuid } from './db-errors.js';
import { collectDoctor, renderDoctor } from './doctor.js';
import { requeueAllFailed, requeueJob } from './requeue.js';
import { collectStatus, renderStatus } from './status.js';
import { collectUsage, renderUsage } from './usage.js';

type Print = (line: string) => void;

/** Runs fn on a fresh connection; database errors the caller can act on become OperationalErrors. */
async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = await connect(url);
  try {
    return await fn(c);
  } catch (err) {
    throw explainDbError(err);
  } finally {
    await c.end();
  }
}

export async function statusCommand(url: string, options: { json?: boolean }, print: Print): Promise<void> {
  const s = await withClient(url, collectStatus);
  print(options.json ? JSON.stringify(s, null, 2) : renderStatus(s));
}

export async function usageCommand(url: string, user: string, options: { json?: boolean }, print: Print): Promise<void> {
  const userId = requireUuid(user, 'usage <user-id>');
  const u = await withClient(url, (c) => collectUsage(c, userId));
  print(options.json ? JSON.stringify(u, null, 2) : renderUsage(u));
}

export async function requeueCommand(
  url: string,
  job: string | undefined,
  options: { allFailed?: boolean; since?: string },
  print: Print,
): Promise<void> {
  if (options.allFailed) {
    if (job !== undefined) throw new OperationalError('requeue: give either a job id or --all-failed, not both.');
    let since: Date | undefined;
    if (options.since !== undefined) {
      since = new Date(options.since);
      if (Number.isNaN(since.getTime())) {
        throw new OperationalError(`--since must be a date or timestamp such as 2026-11-01 or 2026-11-01T12:00Z, got "${options.since}".`);
      }
    }
    const ids = await withClient(url, (c) => requeueAllFailed(c, since));
    print(ids.length ? `Requeued ${ids.length} failed job(s):\n${ids.map((i) => `  ${i}`).join('\n')}` : 'No failed jobs to requeue.');
    return;
  }
  if (options.since !== undefined) throw new OperationalError('--since goes with --all-failed.');
  if (job === undefined) {
    throw new OperationalError('requeue needs the id of a failed upload job, or --all-failed [--since DATE] for every failed job.');
  }
  const jobId = requireUuid(job, 'requeue <job-id>');
  await withClient(url, (c) => requeueJob(c, jobId));
  print(`Requeued upload job ${jobId}: it is due now and its retry count starts again.`);
}

export async function planCommand(url: string, user: string, planId: string, print: Print): Promise<void> {
  const userId = requireUuid(user, 'plan <user-id>');
  await withClient(url, (c) => c.query('SELECT public.set_user_plan($1, $2)', [userId, planId]));
  const u = await withClient(url, (c) => collectUsage(c, userId));
  print(`User ${userId} is now on plan ${planId}.\n${renderUsage(u)}`);
}

/** Read-only fitness report of the database; returns false when a check found a problem (exit 1). */
export async function doctorCommand(url: string, options: { json?: boolean }, print: Print): Promise<boolean> {
  const c = await connect(url, { applicationName: 'neotoma-ops doctor' });
  try {
    const r = await collectDoctor(c);
    print(options.json ? JSON.stringify(r, null, 2) : renderDoctor(r));
    return r.ok;
  } finally {
    await c.end();
  }
}
