import { parseArgs } from 'node:util';
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

export async function statusCommand(url: string, args: string[], print: Print): Promise<void> {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean', default: false } } });
  const s = await withClient(url, collectStatus);
  print(values.json ? JSON.stringify(s, null, 2) : renderStatus(s));
}

export async function usageCommand(url: string, args: string[], print: Print): Promise<void> {
  const { values, positionals } = parseArgs({ args, options: { json: { type: 'boolean', default: false } }, allowPositionals: true });
  const userId = requireUuid(positionals[0], 'usage <user-id>');
  const u = await withClient(url, (c) => collectUsage(c, userId));
  print(values.json ? JSON.stringify(u, null, 2) : renderUsage(u));
}

export async function requeueCommand(url: string, args: string[], print: Print): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    options: { 'all-failed': { type: 'boolean', default: false }, since: { type: 'string' } },
    allowPositionals: true,
  });
  if (values['all-failed']) {
    let since: Date | undefined;
    if (values.since !== undefined) {
      since = new Date(values.since);
      if (Number.isNaN(since.getTime())) {
        throw new OperationalError(`--since must be a date or timestamp such as 2026-11-01 or 2026-11-01T12:00Z, got "${values.since}".`);
      }
    }
    const ids = await withClient(url, (c) => requeueAllFailed(c, since));
    print(ids.length ? `Requeued ${ids.length} failed job(s):\n${ids.map((i) => `  ${i}`).join('\n')}` : 'No failed jobs to requeue.');
    return;
  }
  if (values.since !== undefined) throw new OperationalError('--since goes with --all-failed.');
  const jobId = requireUuid(positionals[0], 'requeue <job-id>');
  await withClient(url, (c) => requeueJob(c, jobId));
  print(`Requeued upload job ${jobId}: it is due now and its retry count starts again.`);
}

export async function planCommand(url: string, args: string[], print: Print): Promise<void> {
  const { positionals } = parseArgs({ args, allowPositionals: true });
  const userId = requireUuid(positionals[0], 'plan <user-id>');
  const planId = positionals[1];
  if (!planId) throw new OperationalError('plan <user-id> <plan>: name the plan, e.g. free, pro or enterprise.');
  await withClient(url, (c) => c.query('SELECT public.set_user_plan($1, $2)', [userId, planId]));
  const u = await withClient(url, (c) => collectUsage(c, userId));
  print(`User ${userId} is now on plan ${planId}.\n${renderUsage(u)}`);
}

/** Read-only fitness report of the database; returns false when a check found a problem (exit 1). */
export async function doctorCommand(url: string, args: string[], print: Print): Promise<boolean> {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean', default: false } } });
  const c = await connect(url, { applicationName: 'neotoma-ops doctor' });
  try {
    const r = await collectDoctor(c);
    print(values.json ? JSON.stringify(r, null, 2) : renderDoctor(r));
    return r.ok;
  } finally {
    await c.end();
  }
}
