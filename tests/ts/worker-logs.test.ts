// Worker logs: one line per event with time, level and fields; JSON lines when not on a terminal (LOG_FORMAT=text
// for people); every upload stored or failed has its own line with the job, the attempt, the bytes, the time taken
// and, for a failure, the error.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Throwaway } from './helpers/db.js';
import { client, runCli } from './helpers/db.js';
import { enqueueJobs, migratedCluster } from './helpers/upload.js';

interface Line {
  time: string;
  level: string;
  msg: string;
  [k: string]: unknown;
}

describe('worker logs', () => {
  let db: Throwaway;
  let c: pg.Client;
  let dir: string;
  beforeAll(async () => {
    db = await migratedCluster();
    c = await client(db.url);
    dir = await mkdtemp(path.join(os.tmpdir(), 'neotoma-logs-'));
  }, 120_000);
  afterAll(async () => {
    await c?.end();
    await db?.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it('JSON lines: a line per upload stored, with job, attempt, bytes and duration', async () => {
    const jobs = await enqueueJobs(c, 2, undefined, 300);
    const r = await runCli(['worker', '--once'], { DATABASE_URL: db.url, STORAGE_BACKEND: 'fs', STORAGE_FS_ROOT: dir, METRICS_PORT: 'off' });
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Line);
    for (const l of lines) {
      expect(Number.isNaN(Date.parse(l.time))).toBe(false);
      expect(['debug', 'info', 'warn', 'error']).toContain(l.level);
    }
    const stored = lines.filter((l) => /: stored$/.test(l.msg));
    expect(stored.map((l) => l.job_id).sort()).toEqual(jobs.map((j) => j.jobId).sort());
    for (const l of stored) expect(l).toMatchObject({ level: 'info', attempt: 1, bytes: 300, bucket: 'sources' });
    for (const l of stored) expect(typeof l.duration_ms).toBe('number');
  });

  it('a failed upload has its line with the error; LOG_FORMAT=text gives readable lines', async () => {
    await c.query('DELETE FROM public.upload_queue');
    const [job] = await enqueueJobs(c, 1);
    const notADir = path.join(dir, 'a-file');
    await writeFile(notADir, 'x');
    const r = await runCli(['worker', '--once'], {
      DATABASE_URL: db.url, STORAGE_BACKEND: 'fs', STORAGE_FS_ROOT: notADir, METRICS_PORT: 'off', LOG_FORMAT: 'text',
    });
    expect(r.code).toBe(0);
    const line = r.stdout.split('\n').find((l) => l.includes(job!.jobId) && /failure/.test(l));
    expect(line).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (WARN|ERROR) +worker .*: job [0-9a-f-]{36}: (retryable|permanent) failure: /);
    expect(line).toMatch(/ attempt=1 bytes=\d+ /);
    expect(line).toMatch(/ error=/);
  });
});
