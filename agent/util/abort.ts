/**
 * A signal that aborts after a timeout or when any of the given signals does, with a timer this
 * module holds itself.
 *
 * Why not `AbortSignal.any([s, AbortSignal.timeout(ms)])`: in Node 20 the composite holds its
 * sources weakly and `AbortSignal.timeout`'s timer holds its signal weakly too, so once nothing
 * else references the timeout signal a garbage collection can drop it and the composite never
 * aborts. Under load this made `GET /v1/status?wait=...&timeout=0.2` hang forever (seen in the
 * e2e tests: about one run in ten on a busy machine).
 */
export interface TimeoutSignal {
  signal: AbortSignal;
  /** True when it aborted because the time ran out (not because a source aborted). */
  readonly timedOut: boolean;
  /** Clear the timer and stop listening to the sources. Idempotent. */
  dispose(): void;
}

export function timeoutSignal(ms: number, ...sources: AbortSignal[]): TimeoutSignal {
  const controller = new AbortController();
  let timedOut = false;
  const onAbort = (): void => {
    dispose();
    controller.abort();
  };
  const timer = setTimeout(() => {
    timedOut = true;
    dispose();
    controller.abort(new DOMException(`timed out after ${ms} ms`, 'TimeoutError'));
  }, Math.max(0, ms));
  const dispose = (): void => {
    clearTimeout(timer);
    for (const s of sources) s.removeEventListener('abort', onAbort);
  };
  for (const s of sources) {
    if (s.aborted) {
      onAbort();
      break;
    }
    s.addEventListener('abort', onAbort, { once: true });
  }
  return {
    signal: controller.signal,
    get timedOut() {
      return timedOut;
    },
    dispose,
  };
}
