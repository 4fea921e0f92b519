import { StorageError, type PutRequest, type StorageAdapter } from '../../../src/storage/types.js';

export type Script = { kind: 'ok'; delayMs?: number } | { kind: 'fail'; status: number } | { kind: 'hang' };

/** An in-memory storage double whose next answers the test sets; counts writes per key. */
export class ScriptedStorage implements StorageAdapter {
  readonly backend = 'scripted';
  readonly objects = new Map<string, Buffer>();
  readonly writes = new Map<string, number>();
  attempts = 0;
  /** Bucket and key of every attempt, in order. */
  readonly calls: Array<{ bucket: string; key: string }> = [];
  script: Script = { kind: 'ok' };

  async put(r: PutRequest): Promise<void> {
    this.attempts++;
    this.calls.push({ bucket: r.bucket, key: r.key });
    const s = this.script;
    if (s.kind === 'fail') throw new StorageError(`scripted answer ${s.status}`, { retryable: s.status >= 500 || s.status === 429, status: s.status });
    const wait = s.kind === 'hang' ? 3_600_000 : (s.delayMs ?? 0);
    if (wait > 0) {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(resolve, wait);
        r.signal?.addEventListener('abort', () => (clearTimeout(t), reject(r.signal!.reason)), { once: true });
      });
    }
    r.signal?.throwIfAborted();
    const key = `${r.bucket}/${r.key}`;
    this.objects.set(key, Buffer.from(r.body));
    this.writes.set(key, (this.writes.get(key) ?? 0) + 1);
  }
}
