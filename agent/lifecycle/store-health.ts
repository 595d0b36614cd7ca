/**
 * Whether the store answers, as readiness needs to know it: probed at start (the first log line
 * about the store names it and says whether it answered), then every `intervalMs` — except when a
 * write succeeded since the last probe, which says the same for free — and at once after a write
 * failed. Each probe is bounded by `timeoutMs`, so a store that stops answering is seen within
 * about `intervalMs + timeoutMs`.
 */
import type { Logger } from 'pino';
import type { StoreProbe } from '../store/block-store.js';
import { errorCode } from '../util/errors.js';

/** What readiness and the status document show of the store. No key, no app id: open to any peer. */
export interface StoreHealthSnapshot {
  /** undefined until the first probe answered or failed. */
  ok: boolean | undefined;
  /** ISO time of the last change. */
  since: string;
  /** The error code of the last failure (`ECONNREFUSED`, `NoSuchBucket`, `AccessDenied`...). */
  code?: string;
  /** `transient` (may come back by itself) or `permanent` (somebody must act). */
  kind?: string;
}

export interface StoreHealthMetrics {
  storeUp(up: boolean): void;
  storeProbe(outcome: string): void;
}

export interface StoreHealthOptions {
  store: StoreProbe & { readonly url: string };
  intervalMs: number;
  timeoutMs: number;
  logger?: Logger;
  metrics?: StoreHealthMetrics;
  /** Called when the store answers again after it did not: writes waiting on a backoff can go now. */
  onRecovered?: () => void;
}

export class StoreHealth {
  private state: StoreHealthSnapshot = { ok: undefined, since: new Date().toISOString() };
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private wroteSinceProbe = false;
  private readonly stopped = new AbortController();
  private closing: Promise<void> | undefined;

  constructor(private readonly opts: StoreHealthOptions) {}

  snapshot(): StoreHealthSnapshot {
    return { ...this.state };
  }

  /** Probe now and keep probing; resolves after the first probe. */
  start(): Promise<void> {
    return this.probeNow();
  }

  /** A write reached the store: it answers. */
  writeSucceeded(): void {
    this.wroteSinceProbe = true;
    if (this.state.ok === false) void this.probeNow();
  }

  /** A write failed with a store error: look now rather than at the next tick. */
  writeFailed(): void {
    if (this.state.ok !== false) void this.probeNow();
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.stopped.abort();
      clearTimeout(this.timer);
      await this.running?.catch(() => undefined);
    })();
    return this.closing;
  }

  private probeNow(): Promise<void> {
    if (this.stopped.signal.aborted) return Promise.resolve();
    this.running ??= this.probe().finally(() => {
      this.running = undefined;
      this.schedule();
    });
    return this.running;
  }

  private schedule(): void {
    clearTimeout(this.timer);
    if (this.stopped.signal.aborted || this.opts.intervalMs <= 0) return;
    this.timer = setTimeout(() => {
      // A write since the last probe already showed the store answers.
      if (this.wroteSinceProbe && this.state.ok === true) {
        this.wroteSinceProbe = false;
        this.schedule();
        return;
      }
      void this.probeNow();
    }, this.opts.intervalMs);
    this.timer.unref();
  }

  private async probe(): Promise<void> {
    this.wroteSinceProbe = false;
    const started = Date.now();
    const signal = AbortSignal.any([this.stopped.signal, AbortSignal.timeout(this.opts.timeoutMs)]);
    try {
      // Raced with the signal: a probe that ignores it (a file store on a hung NFS mount) still
      // counts as not answering once the time is up.
      await Promise.race([this.opts.store.probe({ write: true, signal }), rejectOnAbort(signal)]);
      this.opts.metrics?.storeProbe('ok');
      this.set({ ok: true }, undefined, Date.now() - started);
    } catch (err) {
      if (this.stopped.signal.aborted) return;
      const timedOut = signal.aborted;
      const kind = timedOut ? 'transient' : ((err as { kind?: string }).kind ?? 'transient');
      const code = timedOut ? 'ProbeTimeout' : ((err as { code?: unknown }).code !== undefined ? String((err as { code?: unknown }).code) : errorCode(err));
      this.opts.metrics?.storeProbe(kind);
      this.set({ ok: false, code, kind }, timedOut ? new Error(`no answer within ${this.opts.timeoutMs} ms`, { cause: err }) : err, Date.now() - started);
    }
  }

  private set(next: Omit<StoreHealthSnapshot, 'since'>, err: unknown, ms: number): void {
    const first = this.state.ok === undefined;
    const changed = first || next.ok !== this.state.ok || next.code !== this.state.code;
    this.opts.metrics?.storeUp(next.ok === true);
    if (!changed) return;
    this.state = { ...next, since: new Date().toISOString() };
    const store = this.opts.store.url;
    if (next.ok) {
      this.opts.logger?.info({ store, probeMs: ms }, first ? 'store answered' : 'store answers again');
      if (!first) this.opts.onRecovered?.();
    }
    else this.opts.logger?.warn({ store, code: next.code, kind: next.kind, err }, first ? 'store did not answer the start-up probe' : 'store stopped answering');
  }
}

function rejectOnAbort(signal: AbortSignal): Promise<never> {
  return new Promise((_resolve, reject) => {
    const fail = (): void => reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    if (signal.aborted) fail();
    else signal.addEventListener('abort', fail, { once: true });
  });
}
