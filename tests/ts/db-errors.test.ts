import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { errorCode, isBrokenClient, isConnectionLost, isFinalDatabaseAnswer } from '../../src/db/errors.js';
import { mayAnswerOnRetry, untilAnswered } from '../../src/db/retry.js';

/** An error as pg reports a server's ErrorResponse: a DatabaseError with its SQLSTATE in `code`. */
function pgError(code: string, message = `server error ${code}`): pg.DatabaseError {
  const e = new pg.DatabaseError(message, message.length, 'error');
  e.code = code;
  return e;
}

/** A node socket error, as pg passes it on. */
function socketError(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`connect ${code} 127.0.0.1:5432`), { code, errno: -1, syscall: 'connect' });
}

const lost = [
  pgError('08006', 'connection failure'),
  pgError('08001'),
  pgError('57P01', 'terminating connection due to administrator command'),
  pgError('57P02'),
  pgError('57P03', 'the database system is starting up'),
  socketError('ECONNRESET'),
  socketError('ECONNREFUSED'),
  socketError('EPIPE'),
  socketError('ETIMEDOUT'),
  new Error('Connection terminated unexpectedly'),
  new Error('Connection terminated due to connection timeout'),
  new Error('timeout exceeded when trying to connect'),
];
const answers = [pgError('23505', 'duplicate key value'), pgError('P0001', 'raised'), pgError('PT402', 'storage quota exceeded'), pgError('42P01')];
const transient = [pgError('53300', 'too many connections'), pgError('40001', 'could not serialize access'), pgError('40P01', 'deadlock detected'), pgError('57014', 'canceling statement')];
const brokenClient = [new Error('Client has encountered a connection error and is not queryable'), new Error('Client was closed and is not queryable')];
const notErrors = [undefined, null, 42, {}, 'boom', { code: 8006 }];

describe('isConnectionLost', () => {
  it('is true for lost connections, refused connects and a server going down', () => {
    for (const e of lost) expect(isConnectionLost(e), String(e)).toBe(true);
    expect(isConnectionLost('Connection terminated')).toBe(true);
  });

  it('is false for answers of the database, other transient errors and non-errors', () => {
    for (const e of [...answers, ...transient, ...notErrors]) expect(isConnectionLost(e), String(e)).toBe(false);
  });

  it('is false for a broken client, which isBrokenClient recognises instead', () => {
    for (const e of brokenClient) {
      expect(isConnectionLost(e)).toBe(false);
      expect(isBrokenClient(e)).toBe(true);
    }
    for (const e of [...lost, ...answers, ...notErrors]) expect(isBrokenClient(e), String(e)).toBe(false);
  });
});

describe('isFinalDatabaseAnswer', () => {
  it('is true for a SQLSTATE the database answered with', () => {
    for (const e of answers) expect(isFinalDatabaseAnswer(e), String(e)).toBe(true);
  });

  it('is false for lost connections, transient classes 08/57/53/40, broken clients and non-errors', () => {
    for (const e of [...lost, ...transient, ...brokenClient, ...notErrors]) expect(isFinalDatabaseAnswer(e), String(e)).toBe(false);
  });
});

describe('mayAnswerOnRetry and untilAnswered', () => {
  it('retries lost connections and transient answers, never a final answer or a broken client', () => {
    for (const e of [...lost, ...transient]) expect(mayAnswerOnRetry(e), String(e)).toBe(true);
    for (const e of [...answers, ...brokenClient]) expect(mayAnswerOnRetry(e), String(e)).toBe(false);
  });

  /** A call that fails with each of `errors` in turn, then answers `done`. */
  function failing(errors: unknown[]): { call: () => Promise<string>; attempts: () => number } {
    let n = 0;
    return {
      call: async () => {
        const e = errors[n++];
        if (e !== undefined) throw e;
        return 'done';
      },
      attempts: () => n,
    };
  }

  it('gets the answer after unanswered attempts and says one went unanswered', async () => {
    const f = failing([socketError('ECONNREFUSED'), pgError('40P01', 'deadlock detected')]);
    expect(await untilAnswered(f.call, Date.now() + 10_000)).toEqual({ value: 'done', unanswered: true });
    expect(f.attempts()).toBe(3);
    expect(await untilAnswered(failing([]).call, Date.now() + 10_000)).toEqual({ value: 'done', unanswered: false });
  });

  it('throws a final answer at once, and the last error once the next pause would pass the deadline', async () => {
    const final = failing([pgError('23505', 'duplicate key value')]);
    await expect(untilAnswered(final.call, Date.now() + 10_000)).rejects.toThrow('duplicate key value');
    expect(final.attempts()).toBe(1);
    const down = failing(Array.from({ length: 100 }, () => socketError('ECONNREFUSED')));
    const t0 = Date.now();
    await expect(untilAnswered(down.call, t0 + 300)).rejects.toThrow('ECONNREFUSED');
    expect(Date.now() - t0).toBeLessThan(400);
    expect(down.attempts()).toBeGreaterThan(1);
  });
});

describe('errorCode', () => {
  it('reads a SQLSTATE or a node error code, and nothing else', () => {
    expect(errorCode(pgError('PT402'))).toBe('PT402');
    expect(errorCode(socketError('ECONNRESET'))).toBe('ECONNRESET');
    for (const e of notErrors) expect(errorCode(e)).toBeUndefined();
  });
});
