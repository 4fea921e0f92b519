// Supabase API keys as a project hands them out: the legacy service-role key (a JWT, retired by Supabase at the end of
// 2026) in SUPABASE_SERVICE_ROLE_KEY, and secret keys (`sb_secret_…`): one in SUPABASE_SECRET_KEY, or the JSON
// dictionary SUPABASE_SECRET_KEYS that Supabase gives Edge Functions. Either kind works wherever a key is needed.
import { OperationalError } from '../errors.js';

type Env = Record<string, string | undefined>;

export interface SupabaseKeys {
  /** The key this process presents to Supabase (Storage): a secret key when there is one, else the service-role key. */
  own: string;
  /** Every key a caller may present to this process (the Edge Function's caller check). */
  accepted: string[];
}

const HOW = 'set SUPABASE_SECRET_KEY (sb_secret_…) or SUPABASE_SERVICE_ROLE_KEY (Dashboard → Project Settings → API Keys)';

/** The secret keys of SUPABASE_SECRET_KEYS (`{"default":"sb_secret_…", …}`), `default` first. */
function secretKeysOf(env: Env): string[] {
  const raw = env.SUPABASE_SECRET_KEYS?.trim();
  if (!raw) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new OperationalError('SUPABASE_SECRET_KEYS is not JSON: expected {"default":"sb_secret_…"}, as Supabase sets it for Edge Functions.');
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new OperationalError('SUPABASE_SECRET_KEYS must be a JSON object of named keys, e.g. {"default":"sb_secret_…"}.');
  }
  const entries = Object.entries(parsed as Record<string, unknown>).sort(([a], [b]) => (a === 'default' ? -1 : b === 'default' ? 1 : 0));
  return entries.map(([, v]) => (typeof v === 'string' ? v.trim() : '')).filter((v) => v !== '');
}

/** The keys the environment provides; an operational error naming the variables when there is none. */
export function supabaseKeysFromEnv(env: Env): SupabaseKeys {
  const secrets = [env.SUPABASE_SECRET_KEY?.trim() ?? '', ...secretKeysOf(env)].filter((k) => k !== '');
  const legacy = env.SUPABASE_SERVICE_ROLE_KEY?.trim();
  const accepted = [...new Set([...secrets, ...(legacy ? [legacy] : [])])];
  if (accepted.length === 0) throw new OperationalError(`No Supabase key: ${HOW}.`);
  return { own: accepted[0]!, accepted };
}
