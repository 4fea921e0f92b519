import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface StandInRequest {
  method: string;
  bucket: string;
  path: string;
  headers: http.IncomingHttpHeaders;
}

/**
 * Answers of the real Supabase Storage server (1.11.2), as it sends them: every error that is not a 500 with HTTP 400
 * and the real status in the body (its src/http/error-handler.ts). tests/ts/storage-supabase.test.ts checks each
 * against the real server.
 */
export const REAL_ANSWERS = {
  DatabaseReadOnly: { http: 400, body: { statusCode: '503', error: 'DatabaseReadOnly', message: 'The database is currently in read-only mode. Please try again later.', code: 'DatabaseReadOnly' } },
  LockTimeout: { http: 400, body: { statusCode: '503', error: 'acquiring_lock_timeout', message: 'acquiring lock timeout', code: 'LockTimeout' } },
  NoSuchBucket: { http: 400, body: { statusCode: '404', error: 'Bucket not found', message: 'Bucket not found', code: 'NoSuchBucket' } },
  EntityTooLarge: { http: 400, body: { statusCode: '413', error: 'Payload too large', message: 'The object exceeded the maximum allowed size', code: 'EntityTooLarge' } },
} as const;
export type RealAnswer = keyof typeof REAL_ANSWERS;

/**
 * What the stand-in does with one upload, for what the real server cannot be made to do on demand: answer after
 * `delayMs`, or `drop` the connection without an answer. `answer` sends one of the real server's error answers.
 */
export interface Behaviour {
  delayMs?: number;
  drop?: boolean;
  answer?: RealAnswer;
}

/**
 * A small local HTTP server that answers like the Supabase Storage upload endpoint behind its gateway
 * (`POST|PUT /storage/v1/object/{bucket}/{path}` → `{"Key": "...", "Id": "..."}`, `GET /storage/v1/bucket/{id}`;
 * errors as the real server sends them, REAL_ANSWERS). It keeps the bytes and counts requests per key. Only for slow
 * answers, dropped connections and counting writes, which the real server cannot give on demand.
 */
export class StorageStandIn {
  readonly objects = new Map<string, { body: Buffer; contentType: string | undefined }>();
  /** Uploads received per `{bucket}/{path}` (whatever the answer). */
  readonly received = new Map<string, number>();
  /** Uploads answered 200 per `{bucket}/{path}`. */
  readonly stored = new Map<string, number>();
  readonly requests: StandInRequest[] = [];
  behave: (req: StandInRequest) => Behaviour = () => ({});
  private server: http.Server | undefined;
  private readonly sockets = new Set<import('node:net').Socket>();
  url = '';

  constructor(readonly serviceKey = 'service-role-key-for-tests') {}

  async start(): Promise<string> {
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address() as AddressInfo;
    this.url = `http://127.0.0.1:${port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** Total uploads answered 200. */
  get storedCount(): number {
    let n = 0;
    for (const v of this.stored.values()) n += v;
    return n;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    let aborted = false;
    req.on('close', () => {
      if (!req.complete) aborted = true;
    });
    for await (const c of req) chunks.push(c as Buffer);
    const url = new URL(req.url ?? '/', 'http://x');
    const m = /^\/storage\/v1\/object\/([^/]+)\/(.+)$/.exec(url.pathname);
    const send = (status: number, body: unknown): void => {
      if (res.destroyed) return;
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bearer ${this.serviceKey}` || req.headers.apikey !== this.serviceKey) {
      return send(400, { statusCode: '403', error: 'Unauthorized', message: 'signature verification failed', code: 'AccessDenied' });
    }
    const bucketInfo = /^\/storage\/v1\/bucket\/([^/]+)$/.exec(url.pathname);
    if (bucketInfo && req.method === 'GET') {
      const id = decodeURIComponent(bucketInfo[1]!);
      return send(200, { id, name: id, owner: '', public: false, file_size_limit: null, allowed_mime_types: null });
    }
    if (!m || (req.method !== 'POST' && req.method !== 'PUT')) {
      return send(404, { message: 'no Route matched with those values' });
    }
    const info: StandInRequest = { method: req.method, bucket: decodeURIComponent(m[1]!), path: decodeURIComponent(m[2]!), headers: req.headers };
    const key = `${info.bucket}/${info.path}`;
    this.requests.push(info);
    this.received.set(key, (this.received.get(key) ?? 0) + 1);
    const b = this.behave(info);
    if (b.delayMs) await new Promise((r) => setTimeout(r, b.delayMs));
    if (aborted || res.destroyed) return;
    if (b.drop) {
      req.socket.destroy();
      return;
    }
    if (b.answer) return send(REAL_ANSWERS[b.answer].http, REAL_ANSWERS[b.answer].body);
    this.objects.set(key, { body: Buffer.concat(chunks), contentType: req.headers['content-type'] });
    this.stored.set(key, (this.stored.get(key) ?? 0) + 1);
    send(200, { Key: key, Id: randomUUID() });
  }
}
