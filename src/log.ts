/** Event logging of the long-running commands (`worker`, `start`): one line per event, with time and level. */

export type Level = 'debug' | 'info' | 'warn' | 'error';
export type Fields = Record<string, unknown>;

/**
 * Logs one event. Callers that only want the text may pass any `(line: string) => void`: fields and level are
 * extra arguments.
 */
export type Log = (msg: string, fields?: Fields, level?: Level) => void;

export interface LogOptions {
  /** JSON lines (default when the stream is not a terminal, or LOG_FORMAT=json) or readable text (LOG_FORMAT=text). */
  json?: boolean;
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  env?: Record<string, string | undefined>;
}

function text(value: unknown): string {
  if (value instanceof Date) return value.toISOString();
  const s = typeof value === 'string' ? value : JSON.stringify(value);
  return /[\s"=]/.test(s) ? JSON.stringify(s) : s;
}

/**
 * A logger writing JSON lines (`{"time","level","msg",...fields}`) for log collectors, or, on a terminal,
 * `2026-12-02T21:30:00.123Z INFO  msg key=value` lines for people.
 */
export function createLog(options: LogOptions = {}): Log {
  const stream = options.stream ?? process.stdout;
  const env = options.env ?? process.env;
  const format = env.LOG_FORMAT?.trim().toLowerCase();
  const json = options.json ?? (format === 'json' ? true : format === 'text' ? false : !stream.isTTY);
  return (msg, fields, level = 'info') => {
    const time = new Date().toISOString();
    const line = json
      ? JSON.stringify({ time, level, msg, ...fields }, (_k, v: unknown) => (v instanceof Error ? v.message : v))
      : `${time} ${level.toUpperCase().padEnd(5)} ${msg}${Object.entries(fields ?? {})
          .filter(([, v]) => v !== undefined)
          .map(([k, v]) => ` ${k}=${text(v instanceof Error ? v.message : v)}`)
          .join('')}`;
    stream.write(`${line}\n`);
  };
}
