import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalCluster } from '../../src/db/cluster.js';
import { enqueueJobs, spawnCli, waitFor } from './helpers/upload.js';

let home: string | undefined;
afterAll(async () => {
  if (home) {
    await new LocalCluster(path.join(home, 'db')).destroy().catch(() => undefined);
    await rm(home, { recursive: true, force: true });
  }
});

describe('npm start (neotoma-ops start)', () => {
  it('embedded database, state printed, then the worker stores queued uploads under NEOTOMA_HOME/storage; SIGTERM stops both', async () => {
    home = await mkdtemp(path.join(os.tmpdir(), 'neotoma-home-'));
    await chmod(home, 0o755); // the cluster runs as the postgres OS user
    const p = spawnCli(['start'], { NEOTOMA_HOME: home, DATABASE_URL: '', STORAGE_BACKEND: '', WORKER_POLL_INTERVAL_MS: '60000', METRICS_PORT: '0' });
    try {
      const urlLine = await p.line(/^database:\s+postgres/, 90_000);
      await p.line(/pg_cron:/);
      await p.line(/upload-queue-processor/);
      await p.line(/listening on upload_queue/, 30_000);
      const url = urlLine.replace(/^database:\s+/, '').trim();
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      let key: string;
      let content: Buffer;
      try {
        const [job] = await enqueueJobs(c, 1);
        key = job!.key;
        content = job!.content;
        await c.query('SELECT public.process_upload_queue()');
        await waitFor('the stored file', () => readFile(path.join(home!, 'storage', 'sources', key)).catch(() => undefined), 10_000);
      } finally {
        await c.end();
      }
      expect((await readFile(path.join(home, 'storage', 'sources', key))).equals(content)).toBe(true);
      p.child.kill('SIGTERM');
      expect((await p.exited).code).toBe(0);
      expect(p.output.join('\n')).toMatch(/completed=1/);
      expect(p.output.join('\n')).toMatch(/embedded database stopped/);
    } catch (err) {
      throw new Error(`${(err as Error).message}\noutput:\n${p.output.join('\n')}`);
    } finally {
      p.child.kill('SIGKILL');
    }
  }, 120_000);
});
