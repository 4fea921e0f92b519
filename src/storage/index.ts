import path from 'node:path';
import { OperationalError } from '../errors.js';
import { neotomaHome } from '../paths.js';
import { FsStorage } from './fs.js';
import { loadStorageModule } from './module.js';
import { S3Storage } from './s3.js';
import { SupabaseStorage } from './supabase.js';
import { supabaseKeysFromEnv } from './supabase-keys.js';
import type { StorageAdapter } from './types.js';

export { FsStorage, type FsStorageOptions } from './fs.js';
export { S3Storage, type S3StorageOptions } from './s3.js';
export { SupabaseStorage, type SupabaseStorageOptions } from './supabase.js';
export { isRetryable, isRetryableStatus, toStorageError } from './classify.js';
export { SUPABASE_STORAGE_ERRORS, supabaseStorageError } from './supabase-errors.js';
export { supabaseKeysFromEnv, type SupabaseKeys } from './supabase-keys.js';
export { StorageError, type PutRequest, type StorageAdapter } from './types.js';

export type StorageBackend = 'fs' | 's3' | 'supabase' | 'module';
type Env = Record<string, string | undefined>;

function required(env: Env, name: string, backend: StorageBackend): string {
  const v = env[name]?.trim();
  if (!v) throw new OperationalError(`STORAGE_BACKEND=${backend} needs ${name}; set it or choose another STORAGE_BACKEND.`);
  return v;
}

function flag(env: Env, name: string, fallback: boolean): boolean {
  const v = env[name]?.trim().toLowerCase();
  if (v === undefined || v === '') return fallback;
  if (['1', 'true', 'yes', 'on'].includes(v)) return true;
  if (['0', 'false', 'no', 'off'].includes(v)) return false;
  throw new OperationalError(`${name} must be true or false, got "${env[name]}".`);
}

/** The default folder of the fs backend: NEOTOMA_HOME/storage. */
export function defaultFsRoot(): string {
  return path.join(neotomaHome(), 'storage');
}

/**
 * The storage adapter the environment asks for:
 * STORAGE_BACKEND=fs (default; STORAGE_FS_ROOT), s3 (S3_ENDPOINT, S3_REGION, S3_BUCKET, S3_ACCESS_KEY_ID,
 * S3_SECRET_ACCESS_KEY, S3_FORCE_PATH_STYLE), supabase (SUPABASE_URL, and SUPABASE_SECRET_KEY or
 * SUPABASE_SERVICE_ROLE_KEY) or module (STORAGE_MODULE: your own adapter, see loadStorageModule). Asynchronous
 * because a module adapter is loaded.
 */
export async function createStorageFromEnv(env: Env = process.env): Promise<StorageAdapter> {
  const backend = (env.STORAGE_BACKEND?.trim() || 'fs').toLowerCase();
  switch (backend) {
    case 'fs':
      return new FsStorage({ root: env.STORAGE_FS_ROOT?.trim() || defaultFsRoot() });
    case 's3': {
      const endpoint = env.S3_ENDPOINT?.trim();
      const bucket = env.S3_BUCKET?.trim();
      const accessKeyId = env.S3_ACCESS_KEY_ID?.trim();
      const secretAccessKey = env.S3_SECRET_ACCESS_KEY?.trim();
      if (Boolean(accessKeyId) !== Boolean(secretAccessKey)) {
        throw new OperationalError('Set both S3_ACCESS_KEY_ID and S3_SECRET_ACCESS_KEY, or neither (to use the default AWS credential chain).');
      }
      return new S3Storage({
        region: env.S3_REGION?.trim() || 'us-east-1',
        ...(endpoint ? { endpoint } : {}),
        ...(bucket ? { bucket } : {}),
        ...(accessKeyId && secretAccessKey ? { accessKeyId, secretAccessKey } : {}),
        forcePathStyle: flag(env, 'S3_FORCE_PATH_STYLE', Boolean(endpoint)),
      });
    }
    case 'supabase':
      return new SupabaseStorage({ url: required(env, 'SUPABASE_URL', 'supabase'), key: supabaseKeysFromEnv(env).own });
    case 'module':
      return loadStorageModule(env);
    default:
      throw new OperationalError(`STORAGE_BACKEND must be fs, s3, supabase or module, got "${env.STORAGE_BACKEND}".`);
  }
}
