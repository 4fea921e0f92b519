// The upload processor behind an HTTP endpoint, in web-standard Request/Response only, so that the same code runs in
// a Supabase Edge Function (Deno) and under Node. The queue loop is drainUploadQueue(), as in `worker --once`.
import type pg from 'pg';
import { createPool, describeTarget } from '../db/connect.js';
import type { Fields, Level, Log } from '../log.js';
import { numberFromEnv } from '../parse-number.js';
import { SupabaseStorage } from '../storage/supabase.js';
import { supabaseKeysFromEnv } from '../storage/supabase-keys.js';
import type { StorageAdapter } from '../storage/types.js';
import { WORKER_DEFAULTS } from '../worker/config.js';
import { drainUploadQueue, type DrainSummary } from '../worker/drain.js';

/**
 * Supabase's wall-clock limit for an Edge Function is 150 s on the free plan (400 s on paid plans), and a request
 * that has not been answered after 150 s gets a 504: 50 s leaves room under both, and a run per minute never
 * overlaps the next one's claims for long.
 */
export const DEFAULT_BUDGET_SECONDS = 50;
/** A lease outlives the budget, so a killed invocation's jobs return to the queue soon after (process_upload_queue). */
export const DEFAULT_LEASE_SECONDS = 120;

export interface UploadQueueProcessorConfig {
  /** The database: the transaction-mode pooler or the direct connection Supabase gives functions (SUPABASE_DB_URL). */
  databaseUrl: string;
  /** The setting `databaseUrl` came from, named in messages that say what to fix. */
  databaseSetting?: string;
  /** Keys a caller may present (`Authorization: Bearer <key>` or `apikey: <key>`): the project's secret or service-role keys. */
  acceptedKeys: string[];
  storage: StorageAdapter;
  budgetMs?: number;
  concurrency?: number;
  leaseSeconds?: number;
  /** Warnings, errors and one summary line per invocation by default: Supabase keeps at most 100 log events per 10 s. */
  log?: Log;
}

export interface UploadQueueProcessor {
  /**
   * Answers one request: 401 without an accepted key, 405 for anything but POST, 503 when storage refuses every
   * upload (nothing claimed; the body says why and what to do), else the drain's summary as JSON.
   */
  handle(request: Request): Promise<Response>;
  /** Ends the database pool. */
  close(): Promise<void>;
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
}

/** Equal strings compared in time that does not depend on where they differ. */
async function sameSecret(a: string, b: string): Promise<boolean> {
  const enc = new TextEncoder();
  const [x, y] = await Promise.all([crypto.subtle.digest('SHA-256', enc.encode(a)), crypto.subtle.digest('SHA-256', enc.encode(b))]);
  const u = new Uint8Array(x);
  const v = new Uint8Array(y);
  let diff = 0;
  for (let i = 0; i < u.length; i++) diff |= u[i]! ^ v[i]!;
  return diff === 0;
}

/** Whether any accepted key equals the one presented (every key is compared, so the time says nothing either). */
async function accepted(presented: string, keys: string[]): Promise<boolean> {
  if (!presented) return false;
  const same = await Promise.all(keys.map((k) => sameSecret(presented, k)));
  return same.some(Boolean);
}

function warningsOnly(): Log {
  return (msg: string, fields?: Fields, level: Level = 'info') => {
    if (level === 'warn' || level === 'error') console.log(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }));
  };
}

export function createUploadQueueProcessor(config: UploadQueueProcessorConfig): UploadQueueProcessor {
  const concurrency = config.concurrency ?? WORKER_DEFAULTS.concurrency;
  const log = config.log ?? warningsOnly();
  let pool: pg.Pool | undefined;

  return {
    async handle(request: Request): Promise<Response> {
      const bearer = /^Bearer\s+(.+)$/i.exec(request.headers.get('authorization') ?? '')?.[1]?.trim() ?? '';
      const apikey = request.headers.get('apikey')?.trim() ?? '';
      if (!(await accepted(bearer, config.acceptedKeys)) && !(await accepted(apikey, config.acceptedKeys))) {
        return json(401, {
          error: 'unauthorized',
          message: 'Send a secret key (sb_secret_…) or the service-role key of this project as "Authorization: Bearer <key>".',
        });
      }
      if (request.method !== 'POST') return json(405, { error: 'method_not_allowed', message: 'Use POST.' });
      try {
        pool ??= createPool(config.databaseUrl, concurrency + 2, 'neotoma-ops upload-queue-processor');
        const summary: DrainSummary = await drainUploadQueue({
          pool,
          storage: config.storage,
          workerId: `edge-${crypto.randomUUID()}`,
          budgetMs: config.budgetMs ?? DEFAULT_BUDGET_SECONDS * 1000,
          concurrency,
          leaseSeconds: config.leaseSeconds ?? DEFAULT_LEASE_SECONDS,
          ...(config.databaseSetting ? { databaseSetting: config.databaseSetting } : {}),
          log,
        });
        // the one line every invocation leaves in the function's logs, whatever happened
        const level: Level = summary.ended === 'storage_unavailable' ? 'error' : summary.failed > 0 || summary.lost > 0 ? 'warn' : 'info';
        console.log(JSON.stringify({ time: new Date().toISOString(), level, msg: 'upload-queue-processor: invocation summary', ...summary }));
        if (summary.ended === 'storage_unavailable') {
          return json(503, { error: 'storage_unavailable', message: summary.storage_error, ...summary });
        }
        return json(200, summary);
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        log(`upload-queue-processor: ${message}`, undefined, 'error');
        return json(500, { error: 'processor_failed', message });
      }
    },
    async close(): Promise<void> {
      const p = pool;
      pool = undefined;
      await p?.end();
    },
  };
}

/** The database the function uses: NEOTOMA_DATABASE_URL when set, else SUPABASE_DB_URL (which Supabase provides). */
function databaseFromEnv(env: Record<string, string | undefined>): { url: string; setting: string } {
  for (const setting of ['NEOTOMA_DATABASE_URL', 'SUPABASE_DB_URL']) {
    const url = env[setting]?.trim();
    if (!url) continue;
    try {
      describeTarget(url);
    } catch {
      throw new Error(
        `${setting} is not a postgres:// URL: set NEOTOMA_DATABASE_URL to the transaction pooler's connection string ` +
          '(supabase secrets set NEOTOMA_DATABASE_URL=postgres://postgres.PROJECT:PASSWORD@aws-0-REGION.pooler.supabase.com:6543/postgres).',
      );
    }
    return { url, setting };
  }
  throw new Error(
    'No database: Supabase provides SUPABASE_DB_URL to deployed functions; elsewhere set NEOTOMA_DATABASE_URL ' +
      '(supabase secrets set NEOTOMA_DATABASE_URL=<the transaction pooler\'s connection string>).',
  );
}

/**
 * The request handler of the Edge Function, configured from its environment: the database (NEOTOMA_DATABASE_URL, else
 * SUPABASE_DB_URL), SUPABASE_URL and a key (SUPABASE_SECRET_KEYS or SUPABASE_SECRET_KEY, and/or
 * SUPABASE_SERVICE_ROLE_KEY; Supabase provides them), and optionally UPLOAD_PROCESSOR_BUDGET_SECONDS (50),
 * UPLOAD_PROCESSOR_CONCURRENCY (4), UPLOAD_PROCESSOR_LEASE_SECONDS (120). A missing or bad setting is answered with a
 * 500 that names it, on every request, until it is set.
 */
export function uploadQueueProcessorFromEnv(env: Record<string, string | undefined>): (request: Request) => Promise<Response> {
  let processor: UploadQueueProcessor;
  try {
    const database = databaseFromEnv(env);
    const url = env.SUPABASE_URL?.trim();
    if (!url) throw new Error('Set SUPABASE_URL (Supabase provides it to deployed functions): the project URL, https://PROJECT.supabase.co.');
    const keys = supabaseKeysFromEnv(env);
    processor = createUploadQueueProcessor({
      databaseUrl: database.url,
      databaseSetting: database.setting,
      acceptedKeys: keys.accepted,
      storage: new SupabaseStorage({ url, key: keys.own }),
      budgetMs: numberFromEnv(env, 'UPLOAD_PROCESSOR_BUDGET_SECONDS', DEFAULT_BUDGET_SECONDS) * 1000,
      concurrency: numberFromEnv(env, 'UPLOAD_PROCESSOR_CONCURRENCY', WORKER_DEFAULTS.concurrency),
      leaseSeconds: numberFromEnv(env, 'UPLOAD_PROCESSOR_LEASE_SECONDS', DEFAULT_LEASE_SECONDS),
    });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return () => Promise.resolve(json(500, { error: 'misconfigured', message }));
  }
  return (request) => processor.handle(request);
}
