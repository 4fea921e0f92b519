import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface StandInRequest {
  method: string;
  bucket: string;
  path: string;
  headers: http.IncomingHttpHeaders;
}

/** What the stand-in does with one upload: answer with `status` after `delayMs` (default 200 at once). */
export interface Behaviour {
  status?: number;
  delayMs?: number;
}

/**
 * A small local HTTP server that answers like the Supabase Storage upload endpoint
 * (`POST|PUT /storage/v1/object/{bucket}/{path}` → `{"Key": "...", "Id": "..."}`; errors as
 * `{"statusCode": "...", "error": "...", "message": "..."}`). It keeps the bytes and counts requests per key.
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
    if (!m || (req.method !== 'POST' && req.method !== 'PUT')) {
      return send(404, { statusCode: '404', error: 'not_found', message: 'Not found' });
    }
    if (req.headers.authorization !== `Bearer ${this.serviceKey}` || req.headers.apikey !== this.serviceKey) {
      return send(403, { statusCode: '403', error: 'Unauthorized', message: 'invalid signature' });
    }
    const info: StandInRequest = { method: req.method, bucket: decodeURIComponent(m[1]!), path: decodeURIComponent(m[2]!), headers: req.headers };
    const key = `${info.bucket}/${info.path}`;
    this.requests.push(info);
    this.received.set(key, (this.received.get(key) ?? 0) + 1);
    const b = this.behave(info);
    if (b.delayMs) await new Promise((r) => setTimeout(r, b.delayMs));
    if (aborted || res.destroyed) return;
    const status = b.status ?? 200;
    if (status !== 200) return send(status, { statusCode: String(status), error: 'Error', message: `stand-in answered ${status}` });
    this.objects.set(key, { body: Buffer.concat(chunks), contentType: req.headers['content-type'] });
    this.stored.set(key, (this.stored.get(key) ?? 0) + 1);
    send(200, { Key: key, Id: randomUUID() });
  }
}
