// One worker process of bench/outage/run.mjs: drains what is due with no-op storage (the bytes are still read,
// hashed and handed over), then prints its summary as JSON.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const { drainUploadQueue } = await import(path.join(root, 'dist', 'worker', 'drain.js'));
const [url, id, concurrency] = process.argv.slice(2);
const pool = new pg.Pool({ connectionString: url, max: Number(concurrency) + 2 });
const storage = { backend: 'noop', put: async () => undefined };
const summary = await drainUploadQueue({ pool, storage, workerId: id, concurrency: Number(concurrency), leaseSeconds: 120, log: () => undefined });
await pool.end();
process.stdout.write(JSON.stringify(summary));
