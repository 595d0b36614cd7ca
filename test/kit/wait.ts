/**
 * The kit's one way to wait: for an event (`waitFor`), or, for state only observable from outside
 * (over HTTP, in /proc, in a store), by polling (`until`, and `pollUntil` on top of it). Every
 * wait is bounded and says what it waited for.
 */
import type { EventEmitter } from 'node:events';

/**
 * Resolve with the first event args for which `predicate` holds; reject after `timeoutMs` with a
 * message naming the event (a bound on waiting, not a sleep).
 */
export function waitFor<T extends unknown[]>(
  emitter: EventEmitter,
  event: string,
  predicate: (...args: T) => boolean = () => true,
  timeoutMs = 10_000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const listener = (...args: unknown[]): void => {
      if (!predicate(...(args as T))) return;
      clearTimeout(timer);
      emitter.off(event, listener);
      resolve(args as T);
    };
    const timer = setTimeout(() => {
      emitter.off(event, listener);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for '${event}'`));
    }, timeoutMs);
    emitter.on(event, listener);
  });
}

/**
 * Calls `probe` every `everyMs` until it returns something other than undefined or false, and
 * resolves with that; rejects after `timeoutMs` naming `what` (a function is asked only then,
 * so it can describe the last value seen).
 */
export async function until<T>(
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  what: string | (() => string),
  timeoutMs = 10_000,
  everyMs = 25,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Reads `read()` until `pred` holds and resolves with that value; the timeout names the last one read. */
export async function pollUntil<T>(what: string, read: () => Promise<T>, pred: (v: T) => boolean, timeoutMs: number, everyMs = 100): Promise<T> {
  let last: T | undefined;
  let seen = false;
  return until(
    async () => {
      last = await read();
      seen = true;
      return pred(last) ? { value: last } : undefined;
    },
    () => `${what}; last: ${seen ? JSON.stringify(last) : 'none read'}`,
    timeoutMs,
    everyMs,
  ).then((r) => r.value);
}
