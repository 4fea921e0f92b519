import { randomUUID } from 'node:crypto';
import { mkdir, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { toStorageError } from './classify.js';
import { StorageError, type PutRequest, type StorageAdapter } from './types.js';

export interface FsStorageOptions {
  /** Folder holding one sub-folder per bucket. */
  root: string;
  /** fsync the file and its folder before reporting success (default true). */
  durable?: boolean;
  /** Bytes per write call; the abort signal is checked between chunks (default 4 MiB). */
  chunkBytes?: number;
}

const SAFE_SEGMENT = /^[A-Za-z0-9._=-]+$/;

/** Refuses keys that could leave the root (`..`, absolute paths, odd characters). */
function checkedSegments(value: string, field: string): string[] {
  const segments = value.split('/');
  for (const s of segments) {
    if (!SAFE_SEGMENT.test(s) || s === '.' || s === '..') {
      throw new StorageError(`fs: ${field} "${value}" is not a safe relative path (letters, digits, . _ = - and /)`, {
        retryable: false,
        code: 'EINVAL',
      });
    }
  }
  return segments;
}

/**
 * Local folder storage: `{root}/{bucket}/{key}`, i.e. `{root}/sources/{user_id}/{content_hash}`.
 * Atomic: the bytes go to a temporary file in the same folder, are flushed, then renamed over the final
 * path, so a reader (or a crash) never sees a partial object at the final path.
 */
export class FsStorage implements StorageAdapter {
  readonly backend = 'fs';
  readonly root: string;
  private readonly durable: boolean;
  private readonly chunkBytes: number;

  constructor(options: FsStorageOptions) {
    this.root = path.resolve(options.root);
    this.durable = options.durable ?? true;
    this.chunkBytes = options.chunkBytes ?? 4 << 20;
  }

  /** Absolute path of an object. */
  pathOf(bucket: string, key: string): string {
    return path.join(this.root, ...checkedSegments(bucket, 'bucket'), ...checkedSegments(key, 'key'));
  }

  async put(request: PutRequest): Promise<void> {
    const finalPath = this.pathOf(request.bucket, request.key);
    const dir = path.dirname(finalPath);
    const tmpPath = path.join(dir, `.${path.basename(finalPath)}.${process.pid}.${randomUUID()}.tmp`);
    let fh: FileHandle | undefined;
    try {
      request.signal?.throwIfAborted();
      await mkdir(dir, { recursive: true });
      fh = await open(tmpPath, 'wx', 0o644);
      for (let offset = 0; offset < request.body.length; offset += this.chunkBytes) {
        request.signal?.throwIfAborted();
        await this.writeChunk(fh, request.body.subarray(offset, offset + this.chunkBytes), offset);
      }
      if (this.durable) await fh.sync();
      await fh.close();
      fh = undefined;
      request.signal?.throwIfAborted();
      await rename(tmpPath, finalPath);
      if (this.durable) await this.syncDir(dir);
    } catch (err) {
      await fh?.close().catch(() => undefined);
      await unlink(tmpPath).catch(() => undefined);
      throw toStorageError(err, 'fs', `write of ${request.bucket}/${request.key}`);
    }
  }

  /** Writes one chunk at `position` (a seam for tests that need a slow writer). */
  protected async writeChunk(fh: FileHandle, chunk: Buffer, position: number): Promise<void> {
    let written = 0;
    while (written < chunk.length) {
      const { bytesWritten } = await fh.write(chunk, written, chunk.length - written, position + written);
      written += bytesWritten;
    }
  }

  /** Makes the rename durable; some file systems refuse fsync on a folder, which is not an error here. */
  private async syncDir(dir: string): Promise<void> {
    const d = await open(dir, 'r').catch(() => undefined);
    if (!d) return;
    await d.sync().catch(() => undefined);
    await d.close().catch(() => undefined);
  }
}
