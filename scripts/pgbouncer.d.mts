export interface Pgbouncer {
  /** postgres:// URL of the pooler (same user and database as the target). */
  url: string;
  mode: 'session' | 'transaction';
  stop(): Promise<void>;
}

/** A real pgbouncer in front of `targetUrl`, in session or transaction pool mode (see pgbouncer.mjs). */
export function startPgbouncer(targetUrl: string, mode: 'session' | 'transaction', poolSize?: number): Promise<Pgbouncer>;
/** A TCP port free on 127.0.0.1 now. */
export function freePort(): Promise<number>;
