// One worker process of bench/scale/workers.mjs: its own pool and worker id (as on a separate machine); drains what
// is due with a storage that only counts its writes per key, then prints its summary and those counts as JSON.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const { drainUploadQueue } = await import(path.join(root, 'dist', 'worker', 'drain.js'));
const [url, id, concurrency] = process.argv.slice(2);
const pool = new pg.Pool({ connectionString: url, max: Number(concurrency) + 2 });
const writes = {};
const storage = { backend: 'counting', put: async (r) => { writes[r.key] = (writes[r.key] ?? 0) + 1; } };
const summary = await drainUploadQueue({ pool, storage, workerId: id, concurrency: Number(concurrency), leaseSeconds: 120, log: () => undefined });
await pool.end();
process.stdout.write(JSON.stringify({ summary, writes }));
