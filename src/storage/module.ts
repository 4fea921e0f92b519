import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { OperationalError } from '../errors.js';
import type { StorageAdapter } from './types.js';

type Env = Record<string, string | undefined>;

const HOW = 'an ES module exporting createStorage(env) that returns a storage adapter (docs/storage.md, "Your own adapter")';

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * STORAGE_BACKEND=module: the adapter made by `createStorage(env)` of the ES module at STORAGE_MODULE (a path,
 * absolute or relative to the current directory). It gets the whole environment, so it reads its own settings,
 * and may build on a built-in backend through createStorageFromEnv. Every failure is an OperationalError that
 * names the module and what it must provide.
 */
export async function loadStorageModule(env: Env): Promise<StorageAdapter> {
  const file = env.STORAGE_MODULE?.trim();
  if (!file) throw new OperationalError(`STORAGE_BACKEND=module needs STORAGE_MODULE, the path of ${HOW}.`);
  let exports: { createStorage?: unknown };
  try {
    exports = (await import(pathToFileURL(path.resolve(file)).href)) as { createStorage?: unknown };
  } catch (err) {
    throw new OperationalError(`STORAGE_MODULE ${file} could not be loaded: ${message(err)}. Set it to the path of ${HOW}.`, { cause: err });
  }
  if (typeof exports.createStorage !== 'function') {
    throw new OperationalError(`STORAGE_MODULE ${file} exports no function createStorage: it must be ${HOW}.`);
  }
  let adapter: Partial<StorageAdapter> | null | undefined;
  try {
    adapter = (await (exports.createStorage as (env: Env) => unknown)(env)) as Partial<StorageAdapter> | null | undefined;
  } catch (err) {
    if (err instanceof OperationalError) throw err;
    throw new OperationalError(`STORAGE_MODULE ${file}: createStorage(env) failed: ${message(err)}`, { cause: err });
  }
  if (typeof adapter?.backend !== 'string' || typeof adapter.put !== 'function') {
    throw new OperationalError(`STORAGE_MODULE ${file}: createStorage(env) must return an object with a backend name and put(request).`);
  }
  return adapter as StorageAdapter;
}
