#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { OperationalError } from './errors.js';
import { migrateDown, migrateUp, migrationStatus } from './migrate.js';
import { doctorCommand, planCommand, requeueCommand, statusCommand, usageCommand } from './commands/index.js';
import { runDemo } from './demo.js';
import { start, withDatabase } from './start.js';
import { runWorker } from './worker/command.js';

const USAGE = `Usage: neotoma-ops <command> [options]

Commands:
  start                      embedded database (or DATABASE_URL), migrations, then the main job until Ctrl-C
  migrate up|down|status     apply pending migrations and changed SQL files | revert the last migration | show state
    --count N                with down: revert N migrations
  status [--json]            queue, failures, stale runs, pg_cron jobs, users nearest their quota
  usage <user-id> [--json]   one user's storage and interpretation usage, limits and reset date
  requeue <job-id> | --all-failed [--since DATE]
                             put failed upload jobs back in the queue
  plan <user-id> <plan>      move a user to another plan (effective for the next write)
  doctor [--json]            read-only check that the database is fit for v0.3.0 (before and after an
                             upgrade): each problem with its fix; exits 1 when it finds one
  demo                       a guided tour: quota refusals, a retried upload, a hung interpretation, status
  worker                     upload worker: stores queued uploads until SIGINT/SIGTERM (graceful)
    --once                   store what is due now, then exit
    --concurrency N          uploads at once (default WORKER_CONCURRENCY or 4)
    --worker-id ID           name recorded on claimed jobs (default HOSTNAME-PID)

Environment:
  DATABASE_URL               postgres://USER:PASSWORD@HOST:PORT/DATABASE; unset = embedded local cluster
  NEOTOMA_HOME               folder of the embedded cluster and local storage (default ./.neotoma)
  DEBUG                      set to print stack traces of operational errors
  STORAGE_BACKEND            fs (default) | s3 | supabase; see docs/storage.md for its settings
  WORKER_POLL_INTERVAL_MS    worker: claim at least this often (default 5000)
  WORKER_CONCURRENCY         worker: uploads at once (default 4)
  WORKER_LEASE_SECONDS       worker: lease per claim, extended while uploading (default 300)
  UPLOAD_TIMEOUT_MS          worker: time allowed for one upload (default 120000)
  SHUTDOWN_GRACE_MS          worker: time in-flight uploads get on SIGTERM (default 10000)`;

function print(line: string): void {
  console.log(line);
}

async function migrate(args: string[]): Promise<void> {
  const { values, positionals } = parseArgs({ args, options: { count: { type: 'string' } }, allowPositionals: true });
  const action = positionals[0] ?? 'up';
  const count = values.count === undefined ? undefined : Number(values.count);
  if (count !== undefined && (!Number.isInteger(count) || count < 1)) {
    throw new OperationalError(`--count must be a whole number of at least 1, got "${values.count}".`);
  }
  await withDatabase((url) => migrateAction(url, action, count), print);
}

async function migrateAction(url: string, action: string, count: number | undefined): Promise<void> {
  switch (action) {
    case 'up': {
      const r = await migrateUp(url, { log: print });
      print(
        r.migrations.length + r.sqlFiles.length + r.deferredSteps.length === 0
          ? 'Nothing to apply: the database is up to date.'
          : `Applied ${r.migrations.length} migration(s), ${r.sqlFiles.length} SQL file(s) and ` +
              `${r.deferredSteps.length} deferred step(s).`,
      );
      for (const w of r.warnings) console.error(`neotoma-ops: warning: ${w}`);
      return;
    }
    case 'down': {
      const r = await migrateDown(url, { log: print, count });
      print(r.migrations.length === 0 ? 'Nothing to revert.' : `Reverted ${r.migrations.join(', ')}.`);
      return;
    }
    case 'status': {
      const s = await migrationStatus(url);
      for (const m of s.applied) print(`applied  ${m}`);
      for (const m of s.pending) print(`pending  ${m}`);
      for (const f of s.sqlFiles) print(`${f.state.padEnd(8)} ${f.file}`);
      for (const d of s.pendingSteps) {
        print(`pending  deferred step of ${d.migration}: ${d.description}${d.lastError ? ` (last error: ${d.lastError})` : ''}`);
      }
      return;
    }
    default:
      throw new OperationalError(`Unknown migrate action "${action}". Use: migrate up | migrate down [--count N] | migrate status.`);
  }
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'start':
      return start(print);
    case 'migrate':
      return migrate(rest);
    case 'status':
      return withDatabase((url) => statusCommand(url, rest, print));
    case 'usage':
      return withDatabase((url) => usageCommand(url, rest, print));
    case 'requeue':
      return withDatabase((url) => requeueCommand(url, rest, print));
    case 'plan':
      return withDatabase((url) => planCommand(url, rest, print));
    case 'doctor':
      if (!(await withDatabase((url) => doctorCommand(url, rest, print)))) process.exitCode = 1;
      return;
    case 'demo':
      return withDatabase((url) => runDemo(url, print), print);
    case 'worker':
      return withDatabase(async (url) => {
        await runWorker({ databaseUrl: url, args: rest, log: print });
      }, print);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      print(USAGE);
      return;
    default:
      throw new OperationalError(`Unknown command "${command}".\n${USAGE}`);
  }
}

main(process.argv.slice(2)).then(
  () => process.exit(process.exitCode ?? 0),
  (err: unknown) => {
    if (err instanceof OperationalError) {
      console.error(`neotoma-ops: ${err.message}`);
      if (process.env.DEBUG) console.error(err.stack, err.cause);
      process.exit(err.exitCode);
    }
    console.error(err);
    process.exit(1);
  },
);
