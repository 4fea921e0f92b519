import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../../../src/paths.js';

const execFileP = promisify(execFile);
const dir = path.join(projectRoot, 'tests', 'fixtures', 'neotoma-v0.2.0');

/** The seven users with fixed ids in tests/fixtures/neotoma-v0.2.0/data.sql (see its header). */
export function specialUser(n: number): string {
  return `a0000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
}

/**
 * Makes the database a live Neotoma v0.2.0 one, as its own migrations leave it (on plain PostgreSQL, after
 * plain-prelude.sql has provided the roles and auth.uid() Supabase would have): Neotoma's tables, created by the
 * connecting role (so Supabase's default privileges apply to them in Supabase mode), and, unless `data` is false,
 * populated by data.sql with `users` generic users.
 */
export async function loadV020(url: string, options: { data?: boolean; users?: number; files?: number; runs?: number } = {}): Promise<void> {
  const files = [
    path.join(dir, 'plain-prelude.sql'),
    path.join(dir, 'schema.sql'),
    ...(options.data === false ? [] : [path.join(dir, 'data.sql')]),
  ];
  const vars = [
    ['users', options.users ?? 200],
    ['files', options.files ?? 10],
    ['runs', options.runs ?? 10],
  ].flatMap(([k, v]) => ['-v', `${k}=${v}`]);
  await execFileP('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', ...vars, ...files.flatMap((f) => ['-f', f]), url], {
    env: { ...process.env, PGOPTIONS: '--client-min-messages=warning' },
    maxBuffer: 16 << 20,
  });
}
