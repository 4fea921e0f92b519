// The real Supabase Storage API server for a test file: its own database (a throwaway cluster where `postgres` is the
// superuser, so that faults of Storage's database can be made on demand), the server and its /storage/v1 gateway.
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { StorageClient } from '@supabase/storage-js';
import pg from 'pg';
import { startStorageServer, storageServerMissing, type StorageServer } from '../../../scripts/supabase-stack.mjs';
import { LocalCluster } from '../../../src/db/cluster.js';
import { client, testDatabaseUrl, testMode } from './db.js';

/** Why the real Storage server cannot run here (the suites that need it are skipped, saying so), or undefined. */
export const storageMissing = storageServerMissing();

/**
 * Why docs/supabase.md's guide cannot run against the real parts in this test mode, or undefined when it runs: it
 * needs the Storage server and a Supabase-shaped cluster with Supabase's own extensions (pg_net, Vault) preloaded.
 */
export async function supabaseGuideMissing(): Promise<string | undefined> {
  if (storageMissing) return storageMissing;
  if (testMode !== 'supabase') return 'pg_net and Vault are loaded only in the Supabase-shaped test mode';
  const c = await client(testDatabaseUrl());
  try {
    const { rowCount } = await c.query(`SELECT 1 FROM pg_catalog.pg_extension WHERE extname IN ('pg_net', 'supabase_vault')`);
    return rowCount === 2 ? undefined : 'pg_net and supabase_vault are not installed for this PostgreSQL (../shared/tools/supabase-extensions/build.sh)';
  } finally {
    await c.end();
  }
}

/** A describe title that carries the reason when the suite is skipped. */
export function realPartsTitle(title: string, missing: string | undefined = storageMissing): string {
  return missing ? `${title} (skipped: ${missing})` : title;
}

export interface RealStorage extends StorageServer {
  /** Superuser URL of Storage's own database. */
  databaseUrl: string;
  /** Storage's database refuses writes (as during a failover or a disk-full read-only window) until turned off. */
  setReadOnly(on: boolean): Promise<void>;
  /** Holds the lock the server takes per object while it records an upload; resolves to its release. */
  holdObjectLock(bucket: string, key: string): Promise<() => Promise<void>>;
  createBucket(id: string, fileSizeLimit?: number): Promise<void>;
  deleteBucket(id: string): Promise<void>;
  /** The stored bytes, or undefined when there is no such object. */
  download(bucket: string, key: string): Promise<Buffer | undefined>;
  client(key?: string): StorageClient;
}

/** The server's per-object lock key (its src/internal/hashing/string-to-int.ts, on `{bucket}/{key}`). */
function objectLockKey(bucket: string, key: string): number {
  const s = `${bucket}/${key}`;
  let hash = 5381;
  for (let i = 0; i < s.length; i++) hash = (hash * 33) ^ s.charCodeAt(i);
  return hash >>> 0;
}

async function sql(url: string, text: string, params: unknown[] = []): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(text, params);
  } finally {
    await c.end();
  }
}

/** Starts the real Storage server on a database of its own, with the private bucket `sources` created. */
export async function startRealStorage(options: { fileSizeLimit?: number; bucket?: string | null } = {}): Promise<RealStorage> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'neotoma-storage-db-'));
  await chmod(dir, 0o755);
  const cluster = new LocalCluster(path.join(dir, 'cluster'));
  let server: StorageServer | undefined;
  try {
    await cluster.init({ database: 'storage', fast: true, withoutCron: true });
    const databaseUrl = await cluster.start();
    server = await startStorageServer({ databaseUrl, ...(options.fileSizeLimit ? { fileSizeLimit: options.fileSizeLimit } : {}) });
    const s = server;
    const client = (key = s.serviceRoleKey): StorageClient =>
      new StorageClient(`${s.url}/storage/v1`, { apikey: key, Authorization: `Bearer ${key}` });
    const real: RealStorage = {
      ...s,
      databaseUrl,
      async setReadOnly(on) {
        await sql(databaseUrl, on ? 'ALTER SYSTEM SET default_transaction_read_only = on' : 'ALTER SYSTEM RESET default_transaction_read_only');
        await sql(databaseUrl, 'SELECT pg_reload_conf()');
        await new Promise((r) => setTimeout(r, 300)); // every backend re-reads its configuration
      },
      async holdObjectLock(bucket, key) {
        const c = new pg.Client({ connectionString: databaseUrl });
        await c.connect();
        await c.query('SELECT pg_advisory_lock($1)', [objectLockKey(bucket, key)]);
        return async () => {
          await c.end();
        };
      },
      async createBucket(id, fileSizeLimit) {
        const { error } = await client().createBucket(id, { public: false, ...(fileSizeLimit ? { fileSizeLimit } : {}) });
        if (error) throw error;
      },
      async deleteBucket(id) {
        await client().emptyBucket(id);
        const { error } = await client().deleteBucket(id);
        if (error) throw error;
      },
      async download(bucket, key) {
        const { data, error } = await client().from(bucket).download(key);
        if (error) return undefined;
        return Buffer.from(await data.arrayBuffer());
      },
      client,
      async stop() {
        await s.stop();
        await cluster.destroy().catch(() => undefined);
        await rm(dir, { recursive: true, force: true });
      },
    };
    const bucket = options.bucket === undefined ? 'sources' : options.bucket;
    if (bucket) await real.createBucket(bucket);
    return real;
  } catch (err) {
    await server?.stop();
    await cluster.destroy().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** An HS256 JWT for `role`, signed with `secret` (a key of another project when the secret is not this one's). */
export async function jwtFor(role: string, secret: string): Promise<string> {
  const { createHmac } = await import('node:crypto');
  const b = (o: object): string => Buffer.from(JSON.stringify(o)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  const head = `${b({ alg: 'HS256', typ: 'JWT' })}.${b({ role, iss: 'supabase', iat: now, exp: now + 3600 })}`;
  return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`;
}
