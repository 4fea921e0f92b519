import type pg from 'pg';
import { OperationalError } from '../errors.js';

export const MIN_SERVER_VERSION_NUM = 150000;

/** Refuses servers older than PostgreSQL 15. */
export function checkServerVersion(serverVersionNum: number, serverVersion: string): void {
  if (serverVersionNum < MIN_SERVER_VERSION_NUM) {
    throw new OperationalError(
      `PostgreSQL ${serverVersion} is too old: neotoma-ops needs PostgreSQL 15 or newer. ` +
        'Upgrade the server (on Supabase, every current project runs 15 or newer).',
    );
  }
}

export interface CronSettings {
  installed: boolean;
  available: boolean;
  /** Whether the connecting role may create pg_cron itself (a superuser); undefined = assume it may. */
  canCreate?: boolean;
  role?: string;
  /** NULL when the setting cannot be read by this role (as on managed services). */
  preloadLibraries: string | null;
  cronDatabase: string | null;
  database: string;
}

/** Refuses a database where pg_cron cannot run the project's schedules, naming the setting to change. */
export function checkCron(s: CronSettings): void {
  if (s.installed) return;
  if (!s.available) {
    throw new OperationalError(
      'The pg_cron extension is not installed on this server. On Debian/Ubuntu: apt-get install postgresql-15-cron; ' +
        'on Supabase: Dashboard → Database → Extensions → enable pg_cron.',
    );
  }
  if (s.canCreate === false) {
    // a managed service (Supabase) or a non-superuser role: an admin enables the extension
    throw new OperationalError(
      `pg_cron is not enabled in database "${s.database}", and role "${s.role ?? 'this role'}" cannot enable it. ` +
        'On Supabase: Dashboard → Database → Extensions → enable pg_cron. Self-hosted, as a superuser: add ' +
        "shared_preload_libraries = 'pg_cron' (keeping any libraries already listed) and " +
        `cron.database_name = '${s.database}' to postgresql.conf, restart PostgreSQL, then run ` +
        `CREATE EXTENSION pg_cron in database "${s.database}". Then run the command again.`,
    );
  }
  const preloaded = s.preloadLibraries
    ?.split(',')
    .map((l) => l.trim().replace(/^"|"$/g, ''))
    .includes('pg_cron');
  if (s.preloadLibraries !== null && !preloaded) {
    throw new OperationalError(
      "pg_cron is not loaded: add shared_preload_libraries = 'pg_cron' (keeping any libraries already listed) and " +
        `cron.database_name = '${s.database}' to postgresql.conf, then restart PostgreSQL. ` +
        'On Supabase, enable pg_cron under Database → Extensions instead.',
    );
  }
  if (s.cronDatabase !== null && s.cronDatabase !== s.database) {
    throw new OperationalError(
      `pg_cron runs jobs only in database "${s.cronDatabase}" (cron.database_name), not in "${s.database}". ` +
        `Set cron.database_name = '${s.database}' in postgresql.conf and restart PostgreSQL, or point DATABASE_URL at "${s.cronDatabase}".`,
    );
  }
}

interface PreflightRow {
  role: string;
  superuser: boolean;
  server_version_num: string;
  server_version: string;
  database: string;
  installed: boolean;
  available: boolean;
  preload: string | null;
  cron_database: string | null;
}

/** Checks the server version and pg_cron before anything is changed. */
export async function preflight(client: pg.Client): Promise<void> {
  const { rows } = await client.query<PreflightRow>(`
    SELECT current_user AS role,
           (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) AS superuser,
           current_setting('server_version_num') AS server_version_num,
           current_setting('server_version') AS server_version,
           current_database() AS database,
           EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_cron') AS installed,
           EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'pg_cron') AS available,
           CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_settings WHERE name = 'shared_preload_libraries')
                THEN current_setting('shared_preload_libraries') END AS preload,
           -- pg_settings hides superuser-only settings (cron.database_name among them) from other roles
           (SELECT setting FROM pg_catalog.pg_settings WHERE name = 'cron.database_name') AS cron_database`);
  const row = rows[0];
  if (!row) throw new Error('preflight query returned no row');
  checkServerVersion(Number(row.server_version_num), row.server_version);
  checkCron({
    installed: row.installed,
    available: row.available,
    preloadLibraries: row.preload,
    cronDatabase: row.cron_database,
    database: row.database,
    canCreate: row.superuser,
    role: row.role,
  });
}
