// Lints the migrations with squawk (.squawk.toml: the project's lock rules), each up and down section apart, and
// prints the findings nobody explained; exits 1 when there is one. The rest is explained here, one line each.
//   node scripts/lint-migrations.mjs [--json]
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const run = promisify(execFile);

/** Rules a down section may break: it reverts, dropping what its up created, in one transaction (no CONCURRENTLY). */
const DOWN_MAY = new Set(['ban-drop-table', 'ban-drop-column', 'require-concurrent-index-deletion']);

/** Findings of up sections explained: rule → column → why. */
const EXPLAINED = {
  'prefer-bigint-over-int': {
    interpretation_limit_month: 'interpretations per month: a plan limit, far below 2^31',
    interpretation_count_month: 'interpretations counted in one month: bounded by the monthly limit',
    interpretation_limit_month_override: 'a per-user monthly limit, as interpretation_limit_month',
    interpretation_count: 'a closed period\'s interpretations, as interpretation_count_month',
    interpretation_limit: 'a closed period\'s monthly limit, as interpretation_limit_month',
    billing_anchor_day: 'a day of the month, 1..31 (CHECKed)',
    sweep_max_batches: 'steps per sweep run (CHECKed)',
    retry_count: 'retries of one upload: at most max_retries (5, CHECKed)',
    max_retries: 'at most a handful (CHECKed), as design.md types it',
    batch_size: 'rows per step of a sweep (CHECKed 1..10000)',
    sweep_batch_size: 'runs per step of the sweep (CHECKed)',
  },
  'prefer-bigint-over-smallint': {
    shard: 'the shard of a counter row: 0..63 (CHECKed)',
  },
};

async function sections(dir) {
  const out = [];
  for (const name of (await readdir(dir)).filter((n) => n.endsWith('.sql')).sort()) {
    const text = await readFile(path.join(dir, name), 'utf8');
    const at = text.search(/^-- Down Migration/m);
    out.push({ file: name, part: 'up', text: text.slice(0, at) });
    out.push({ file: name, part: 'down', text: text.slice(at) });
  }
  return out;
}

export async function lintMigrations(dir = path.join(root, 'migrations')) {
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'neotoma-squawk-'));
  try {
    const parts = await sections(dir);
    const byPath = new Map();
    for (const p of parts) {
      const file = path.join(tmp, `${p.file.replace(/\.sql$/, '')}.${p.part}.sql`);
      await writeFile(file, p.text);
      byPath.set(file, p);
    }
    // squawk's binary for linux x64, an optional dependency (the registry this project installs from carries that
    // platform's package only); elsewhere, squawk on PATH
    const bundled = path.join(root, 'node_modules', '@squawk-cli', 'linux-x64', 'bin', 'squawk');
    const squawk = existsSync(bundled) ? bundled : 'squawk';
    const { stdout } = await run(squawk, ['-c', path.join(root, '.squawk.toml'), '--reporter=json', ...byPath.keys()], { maxBuffer: 1 << 24 })
      .catch((e) => {
        if (e.code === 'ENOENT') {
          throw new Error('squawk is not installed: npm ci installs it on linux x64 (@squawk-cli/linux-x64); elsewhere put squawk 2.66 on PATH');
        }
        return { stdout: e.stdout }; // squawk exits non-zero when it reports findings
      });
    const findings = JSON.parse(stdout || '[]');
    const unexplained = [];
    const explained = [];
    for (const f of findings) {
      const p = byPath.get(f.file);
      const where = `migrations/${p.file} (${p.part}) line ${f.line + 1}: ${f.rule_name}`;
      const column = p.text.split('\n')[f.line]?.trim().split(/\s+/)[0];
      const why = p.part === 'down' && DOWN_MAY.has(f.rule_name) ? 'a down section reverts its up, in one transaction'
        : p.part === 'up' ? EXPLAINED[f.rule_name]?.[column] : undefined;
      (why ? explained : unexplained).push(why ? `${where} (${column ?? ''}): ${why}` : `${where}: ${f.message}`);
    }
    return { findings: findings.length, explained, unexplained };
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const r = await lintMigrations();
  if (process.argv.includes('--json')) console.log(JSON.stringify(r, null, 2));
  else {
    for (const line of r.unexplained) console.log(`unexplained: ${line}`);
    console.log(`${r.findings} finding(s): ${r.explained.length} explained, ${r.unexplained.length} unexplained`);
  }
  process.exit(r.unexplained.length > 0 ? 1 : 0);
}
