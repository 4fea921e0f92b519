// What the repository says the database should hold: the numbered migrations (each an `-- Up Migration` and a
// `-- Down Migration` section) and the SQL files (functions, views, triggers), each declaring the migration it
// needs in a `-- requires: NNNN_name` header.
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { OperationalError } from '../errors.js';
import { projectRoot } from '../paths.js';

export interface Migration {
  name: string;
  file: string;
  text: string;
  up: string;
  down: string;
  /** Character offsets of the sections in the file (for error lines). */
  upAt: number;
  downAt: number;
}

export interface SqlFile {
  /** Path relative to the package root: the file's name in the record. */
  name: string;
  text: string;
  checksum: string;
  /** The migration it needs (its `-- requires:` header): applied after it, dropped when it is reverted. */
  requires: string;
}

export function relative(file: string): string {
  return path.relative(projectRoot, file);
}

export function lineAt(text: string, offset: number): number {
  return text.slice(0, Math.max(0, offset)).split('\n').length;
}

const UP = /^-- Up Migration[^\n]*\n/m;
const DOWN = /^-- Down Migration[^\n]*\n/m;

/** The migrations of `dir`, in name order (NNNN_name.sql). */
export async function readMigrations(dir: string): Promise<Migration[]> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.sql')).sort();
  const out: Migration[] = [];
  for (const n of names) {
    const file = path.join(dir, n);
    const text = await readFile(file, 'utf8');
    const up = UP.exec(text);
    const down = DOWN.exec(text);
    if (!up || !down || down.index < up.index) {
      throw new OperationalError(`${relative(file)}: a migration has an "-- Up Migration" line, then a "-- Down Migration" line; add them.`);
    }
    const upAt = up.index + up[0].length;
    const downAt = down.index + down[0].length;
    out.push({ name: n.replace(/\.sql$/, ''), file, text, up: text.slice(upAt, down.index), down: text.slice(downAt), upAt, downAt });
  }
  return out;
}

const REQUIRES = /^-- requires: (\S+)\s*$/m;

/** The .sql files under each of `dirs` (subfolders included), each folder in turn, in path order. */
export async function readSqlFiles(dirs: string[], migrations: string[]): Promise<SqlFile[]> {
  const out: SqlFile[] = [];
  for (const dir of dirs) {
    let names: string[];
    try {
      names = ((await readdir(dir, { recursive: true })) as string[]).filter((n) => n.endsWith('.sql')).sort();
    } catch {
      continue;
    }
    for (const n of names) {
      const file = path.join(dir, n);
      const text = await readFile(file, 'utf8');
      const requires = REQUIRES.exec(text.split('\n').slice(0, 5).join('\n'))?.[1];
      if (!requires || !migrations.includes(requires)) {
        throw new OperationalError(
          `${relative(file)}: its first lines must name the migration it needs, e.g. "-- requires: ${migrations.at(-1) ?? '0001_name'}"` +
            (requires ? ` (there is no migration ${requires})` : '') + '. It is applied once that migration is, and dropped when it is reverted.',
        );
      }
      out.push({ name: relative(file), text, checksum: createHash('sha256').update(text).digest('hex'), requires });
    }
  }
  return out;
}

/**
 * What a SQL file is named after (each file defines one function, view or trigger and names itself after it):
 * `sql/functions/<capability>/[internal/]<name>.sql` → function <name> (schema neotoma_ops under internal/, else
 * public); `sql/views/…/<name>.sql` → view public.<name>; `sql/triggers/…/<name>.sql` → trigger <name> and its
 * function neotoma_ops.<name>_trg.
 */
export function namedObjects(file: string): Array<{ kind: 'function' | 'view' | 'trigger'; schema: string | null; name: string }> {
  const parts = file.split(path.sep);
  const base = path.basename(file, '.sql');
  if (parts.includes('triggers')) return [{ kind: 'trigger', schema: null, name: base }, { kind: 'function', schema: 'neotoma_ops', name: `${base}_trg` }];
  if (parts.includes('views')) return [{ kind: 'view', schema: 'public', name: base }];
  return [{ kind: 'function', schema: parts.includes('internal') ? 'neotoma_ops' : 'public', name: base }];
}
