import { Backoff, sleep } from './backoff.js';
import { isBrokenClient, isFinalDatabaseAnswer } from './errors.js';

/**
 * Whether the same call may get an answer when tried again: the database gave none (connection lost, server
 * restarting) or a passing one (deadlock, serialization failure, too many connections), and the client is not
 * broken for good (pg answers "not queryable" to every later call on it; only a pool hands out a new one).
 */
export function mayAnswerOnRetry(err: unknown): boolean {
  return !isFinalDatabaseAnswer(err) && !isBrokenClient(err);
}

export interface Answered<T> {
  value: T;
  /** An earlier attempt got no answer: it may have run. */
  unanswered: boolean;
}

/**
 * Runs `call` until the database answers it: an attempt that may get an answer when tried again
 * (mayAnswerOnRetry) is retried after a growing pause (0.1 s doubling up to 2 s, jittered) while that pause
 * ends before `deadline` (epoch ms); past it, the attempt's error is thrown. Only for calls that are harmless
 * to repeat (guarded in SQL or fenced by a lease token): the attempt that got no answer may have run.
 */
export async function untilAnswered<T>(call: () => Promise<T>, deadline: number): Promise<Answered<T>> {
  const backoff = new Backoff(100, 2000);
  let unanswered = false;
  for (;;) {
    try {
      return { value: await call(), unanswered };
    } catch (err) {
      const pause = backoff.next();
      if (!mayAnswerOnRetry(err) || Date.now() + pause > deadline) throw err;
      unanswered = true;
      await sleep(pause);
    }
  }
}
