#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { doctorCommand, planCommand, requeueCommand, statusCommand, usageCommand } from './commands/index.js';
import { runDemo } from './demo.js';
import { OperationalError } from './errors.js';
import { createLog } from './log.js';
import { migrateDown, migrateUp, migrationStatus } from './migrate.js';
import { describeNumberRule, parseNumber } from './parse-number.js';
import { projectRoot } from './paths.js';
import { start, withDatabase } from './start.js';
import { runWorker } from './worker/command.js';
import { WORKER_DEFAULTS, workerSettingsHelp } from './worker/config.js';

const ENVIRONMENT = `
Environment:
  DATABASE_URL               postgres://USER:PASSWORD@HOST:PORT/DATABASE; unset = embedded local cluster.
                             any connection: direct, session or transaction pooler (docs/supabase.md)
  NEOTOMA_HOME               folder of the embedded cluster and local storage (default ./.neotoma)
  DEBUG                      set to print stack traces of operational errors
  LOG_FORMAT                 json | text: worker and start log lines (default: json unless on a terminal)
  STORAGE_BACKEND            fs (default) | s3 | supabase | module (with STORAGE_MODULE); see docs/storage.md
${workerSettingsHelp('  ', 26).join('\n')}
  METRICS_HOST, METRICS_PORT worker: where /metrics and /healthz are served (127.0.0.1, 9464; off)`;

function print(line: string): void {
  console.log(line);
}

function version(): string {
  return (JSON.parse(readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { version: string }).version;
}

function wholeNumber(value: string): number {
  const n = parseNumber(value);
  if (n === undefined) throw new InvalidArgumentError(`expected ${describeNumberRule()}.`);
  return n;
}

/** The full name of a command (`neotoma-ops migrate up`). */
function fullName(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/**
 * Every command: --help (exit 0), no excess arguments, and a usage error as one line followed by the command's
 * usage line and where to find help (exit 2). Called once the command is fully defined.
 */
function strict(cmd: Command): Command {
  return cmd
    .allowExcessArguments(false)
    .exitOverride()
    .showHelpAfterError(`Usage: ${fullName(cmd)} ${cmd.usage()}\nRun "${fullName(cmd)} --help" for more.`);
}

function program(): Command {
  const p = new Command('neotoma-ops')
    .description('Operational hardening for Neotoma on PostgreSQL: upload retry queue, interpretation timeouts, quotas, monitoring.')
    .version(version(), '-V, --version', 'print the version and exit')
    .addHelpText('after', ENVIRONMENT)
    // set before the subcommands exist: they share this output configuration
    .configureOutput({ outputError: (str, write) => write(`neotoma-ops: ${str.trim().replace(/^error: /, '').replace(/\n(?=\(Did you mean)/, ' ')}\n`) });

  p.command('start')
    .description('embedded database (or DATABASE_URL), migrations, then the upload worker until Ctrl-C')
    .action(async () => start(createLog()));

  const migrate = p.command('migrate').description('apply, revert or show the migrations');
  migrate.command('up')
    .description('apply pending migrations, changed SQL files, the deferred steps, then put back what drifted')
    .action(() =>
      withDatabase(async (url) => {
        const r = await migrateUp(url, { log: print });
        const applied = r.migrations.length + r.sqlFiles.length + r.deferredSteps.length;
        print(
          (applied === 0
            ? 'Nothing to apply: the database is up to date.'
            : `Applied ${r.migrations.length} migration(s), ${r.sqlFiles.length} SQL file(s) and ` +
                `${r.deferredSteps.length} deferred step(s).`) +
            (r.repaired.length > 0 ? ` Put back ${r.repaired.length} object(s) that had drifted from the record.` : ''),
        );
        for (const w of r.warnings) console.error(`neotoma-ops: warning: ${w}`);
      }, print),
    );
  migrate.command('down')
    .description('revert the last migration(s), each in one transaction; refuses to destroy data it did not write')
    .option('--count <n>', 'how many migrations to revert', wholeNumber, 1)
    .option('--dry-run', 'say what would be dropped, put back and destroyed; change nothing')
    .option('--drop-data', 'revert even where that destroys rows neotoma-ops did not write (application rows, queued uploads)')
    .action((o: { count: number; dryRun?: boolean; dropData?: boolean }) =>
      withDatabase(async (url) => {
        const r = await migrateDown(url, { log: print, count: o.count, dryRun: o.dryRun ?? false, dropData: o.dropData ?? false });
        if (o.dryRun) print('Dry run: nothing was changed.');
        else print(r.migrations.length === 0 ? 'Nothing to revert.' : `Reverted ${r.migrations.join(', ')}.`);
      }, print),
    );
  migrate.command('status')
    .description('applied and pending migrations, SQL files and deferred steps (changes nothing)')
    .action(() =>
      withDatabase(async (url) => {
        const s = await migrationStatus(url);
        for (const m of s.applied) print(`applied  ${m}`);
        for (const m of s.pending) print(`pending  ${m}`);
        for (const f of s.sqlFiles) print(`${f.state.padEnd(8)} ${f.file}`);
        for (const d of s.pendingSteps) {
          const running = d.progress && d.progressAt && Date.now() - d.progressAt.getTime() < 30_000
            ? ` (running: ${d.progress}, ${Math.round((Date.now() - d.progressAt.getTime()) / 1000)} s ago)` : '';
          print(`pending  deferred step of ${d.migration}: ${d.description}${running}${d.lastError ? ` (last error: ${d.lastError})` : ''}`);
        }
      }, print),
    );

  p.command('status')
    .description('upload queue, failures, stale runs, pg_cron jobs, users nearest their quota')
    .option('--json', 'print JSON (docs/schemas/status.schema.json)')
    .action((o: { json?: boolean }) => withDatabase((url) => statusCommand(url, o, print)));

  p.command('usage')
    .description("one user's storage and interpretation usage, limits and reset date")
    .argument('<user-id>', 'the user (a UUID)')
    .option('--json', 'print JSON (docs/schemas/usage.schema.json)')
    .action((user: string, o: { json?: boolean }) => withDatabase((url) => usageCommand(url, user, o, print)));

  p.command('requeue')
    .description('put failed upload jobs back in the queue')
    .argument('[job-id]', 'the failed job to requeue')
    .option('--all-failed', 'every failed job')
    .option('--since <date>', 'with --all-failed: only jobs failed since this date or timestamp')
    .action((job: string | undefined, o: { allFailed?: boolean; since?: string }) => withDatabase((url) => requeueCommand(url, job, o, print)));

  p.command('plan')
    .description('move a user to another plan (effective for the next write)')
    .argument('<user-id>', 'the user (a UUID)')
    .argument('<plan>', 'a plan id, e.g. free, pro, enterprise')
    .action((user: string, plan: string) => withDatabase((url) => planCommand(url, user, plan, print)));

  p.command('doctor')
    .description('read-only check that the database is fit for v0.3.0, before and after an upgrade; exit 1 on a problem')
    .option('--json', 'print JSON (docs/schemas/doctor.schema.json)')
    .action(async (o: { json?: boolean }) => {
      if (!(await withDatabase((url) => doctorCommand(url, o, print)))) process.exitCode = 1;
    });

  p.command('demo')
    .description('a guided tour: quota refusals, a retried upload, a hung interpretation, status')
    .option('--yes', 'run on DATABASE_URL, a database the demo did not create (it removes what it wrote afterwards)')
    .action((o: { yes?: boolean }) =>
      withDatabase((url) => runDemo(url, print, { foreignDatabase: Boolean(process.env.DATABASE_URL), confirmed: o.yes ?? false }), print),
    );

  p.command('worker')
    .description('the upload worker: stores queued uploads until SIGINT/SIGTERM (graceful)')
    .option('--once', 'store what is due now, then exit')
    .addOption(new Option('--concurrency <n>', `uploads at once (default WORKER_CONCURRENCY or ${WORKER_DEFAULTS.concurrency})`).argParser(wholeNumber))
    .option('--worker-id <id>', 'name recorded on claimed jobs (default HOSTNAME-PID)')
    .addOption(new Option('--budget <seconds>', 'like --once, returning within this time with every claimed job completed or back in the queue').argParser(wholeNumber).implies({ once: true }))
    .action((o: { once?: boolean; concurrency?: number; workerId?: string; budget?: number }) => {
      const log = createLog();
      return withDatabase(async (url) => {
        await runWorker({
          databaseUrl: url, log, once: o.once, concurrency: o.concurrency, workerId: o.workerId,
          ...(o.budget !== undefined ? { budgetMs: o.budget * 1000 } : {}),
        });
      }, log);
    });

  for (const cmd of [p, ...p.commands, ...migrate.commands]) strict(cmd);
  return p;
}

async function main(argv: string[]): Promise<void> {
  const p = program();
  if (argv.length === 0) {
    p.outputHelp();
    return;
  }
  await p.parseAsync(argv, { from: 'user' });
}

main(process.argv.slice(2)).then(
  () => process.exit(process.exitCode ?? 0),
  (err: unknown) => {
    if (err instanceof CommanderError) {
      // --help and --version exit 0; a usage error has been printed in one line with the usage: exit 2
      process.exit(err.exitCode === 0 ? 0 : 2);
    }
    if (err instanceof OperationalError) {
      console.error(`neotoma-ops: ${err.message}`);
      if (process.env.DEBUG) console.error(err.stack, err.cause);
      process.exit(err.exitCode);
    }
    console.error(err);
    process.exit(1);
  },
);
