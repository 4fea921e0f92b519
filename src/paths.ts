import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root: dist/ and src/ both sit one level below it. */
export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export const migrationsDir = path.join(projectRoot, 'migrations');
export const sqlFunctionsDir = path.join(projectRoot, 'sql', 'functions');
export const sqlViewsDir = path.join(projectRoot, 'sql', 'views');
export const sqlTriggersDir = path.join(projectRoot, 'sql', 'triggers');
export const scriptsDir = path.join(projectRoot, 'scripts');

/** Where the embedded database and local storage live unless NEOTOMA_HOME says otherwise. */
export function neotomaHome(): string {
  return path.resolve(process.env.NEOTOMA_HOME ?? path.join(projectRoot, '.neotoma'));
}
