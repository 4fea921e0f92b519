import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, throwawayCluster, type Throwaway } from './helpers/db.js';

describe('neotoma-ops demo (Neotoma IT-004)', () => {
  let db: Throwaway;
  let home: string;
  beforeAll(async () => {
    db = await throwawayCluster();
    home = await mkdtemp(path.join(os.tmpdir(), 'neotoma-demo-'));
    await chmod(home, 0o755);
  });
  afterAll(async () => {
    await db?.destroy();
    await rm(home, { recursive: true, force: true });
  });

  it('runs end to end on a fresh database, exits 0 and moves every metric it promises', async () => {
    const r = await runCli(['demo', '--yes'], { DATABASE_URL: db.url, NEOTOMA_HOME: home, METRICS_PORT: 'off' });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/refused, SQLSTATE PT402: Storage quota exceeded: 40\.0 KiB of 64\.0 KiB used on plan free; this upload needs 30\.0 KiB/);
    expect(r.stdout).toMatch(/refused, SQLSTATE PT413: File too large/);
    expect(r.stdout).toMatch(/pending_retry: job [0-9a-f-]{36}, retry 1 due in/);
    expect(r.stdout).toMatch(/job completed; source uploaded; bytes still queued: false/);
    expect(r.stdout).toMatch(/stored object sha256 matches/);
    expect(r.stdout).toMatch(/is failed, "Timeout - no heartbeat"/);
    expect(r.stdout).toMatch(/Interpretation quota exceeded: 2 of 2/);
    expect(r.stdout).toMatch(/^Upload queue$/m);
    expect(r.stdout).not.toMatch(/^\s+ZERO /m);
    expect(r.stdout).toMatch(/Demo complete/);
  });
});
