import type pg from 'pg';
import { when } from './format.js';

/** The JSON shape of `neotoma-ops usage <user-id> --json` (docs/schemas/usage.schema.json). */
export interface UsageReport {
  user_id: string;
  plan: string;
  has_usage_row: boolean;
  used_bytes: number;
  limit_bytes: number | null;
  used_human: string;
  limit_human: string;
  percent_used: number | null;
  state: 'ok' | 'warning' | 'full' | 'over';
  total_sources: number;
  interpretations_used: number;
  interpretations_limit: number | null;
  max_file_bytes: number | null;
  max_file_human: string;
  billing_period_start: string | null;
  resets_at: string | null;
}

interface ReportRow {
  plan_id: string; used_bytes: string; limit_bytes: string | null; used_human: string; limit_human: string;
  percent_used: string | null; state: UsageReport['state']; total_sources: string; interpretations_used: number;
  interpretations_limit: number | null; max_file_bytes: string | null; max_file_human: string; billing_period_start: Date;
  resets_at: Date; has_usage_row: boolean;
}

const num = (v: string | null): number | null => (v === null ? null : Number(v));

/**
 * public.usage_report() for one user (the storage_usage_report row; for a user who never wrote, the row their
 * first write starts from). Such a user has no billing period yet: it starts with that write.
 */
export async function collectUsage(db: pg.Client | pg.Pool, userId: string): Promise<UsageReport> {
  const { rows } = await db.query<ReportRow>(
    `SELECT plan_id, used_bytes, limit_bytes, used_human, limit_human, percent_used, state, total_sources,
            interpretations_used, interpretations_limit, max_file_bytes, max_file_human, billing_period_start, resets_at,
            has_usage_row
       FROM public.usage_report($1)`,
    [userId],
  );
  const r = rows[0];
  if (!r) throw new Error(`public.usage_report() returned no row for user ${userId}`);
  return {
    user_id: userId,
    plan: r.plan_id,
    has_usage_row: r.has_usage_row,
    used_bytes: Number(r.used_bytes),
    limit_bytes: num(r.limit_bytes),
    used_human: r.used_human,
    limit_human: r.limit_human,
    percent_used: num(r.percent_used),
    state: r.state,
    total_sources: Number(r.total_sources),
    interpretations_used: r.interpretations_used,
    interpretations_limit: r.interpretations_limit,
    max_file_bytes: num(r.max_file_bytes),
    max_file_human: r.max_file_human,
    billing_period_start: r.has_usage_row ? new Date(r.billing_period_start).toISOString() : null,
    resets_at: r.has_usage_row ? new Date(r.resets_at).toISOString() : null,
  };
}

export function renderUsage(u: UsageReport): string {
  const pct = u.percent_used === null ? '' : ` (${u.percent_used}%)`;
  return [
    `user ${u.user_id} on plan ${u.plan}${u.has_usage_row ? '' : ' (no writes yet)'}`,
    `  storage          ${u.used_human} of ${u.limit_human}${pct}: ${u.state}`,
    `  sources          ${u.total_sources}`,
    `  interpretations  ${u.interpretations_used} of ${u.interpretations_limit ?? 'unlimited'} this period`,
    `  largest file     ${u.max_file_human}`,
    `  resets on        ${u.resets_at ? `${when(u.resets_at)} UTC` : 'one month after the first write'}`,
  ].join('\n');
}
