/**
 * The lifecycle as the rest of the agent sees it: it runs the termination sources, feeds their
 * notices to the notice store (which decides) and the store's decisions to the drain handler
 * (which acts), and offers what the HTTP routes and the gRPC service need: a status snapshot,
 * state-change subscriptions, drain requests and drain progress as an async iterable.
 */
import type { Logger } from 'pino';
import type { WriteOrder } from '../writeback/writeback-queue.js';
import type { AgentState, AgentStateName, StateChange } from './agent-state.js';
import { DrainHandler, type BandwidthControl, type DrainableQueue, type DrainMetrics, type ExitOutcome } from './drain-handler.js';
import { NoticeStore } from './notice-store.js';
import { describeNotice, isAcknowledging, type AcknowledgingSource, type NoticeKind, type NoticeSource, type TerminationNotice, type TerminationSource } from './notice.js';
import { SafeExitFile } from './safe-exit-file.js';

/** What the gRPC status RPCs and `/v1/status` report about the lifecycle. */
export interface LifecycleSnapshot {
  state: AgentStateName;
  /** ISO time the state was entered. */
  stateSince: string;
  /** ISO time the drain started, if one did. */
  drainStartedAt?: string;
  /** ISO time by which writing back must be done (earliest notice deadline), when known. */
  deadline?: string;
  /** ISO time the process exits at the latest (after SIGTERM). */
  exitBy?: string;
  pendingOutputs: number;
  pendingBytes: number;
  persistedOutputs: number;
  persistedBytes: number;
  notices: Array<Record<string, unknown>>;
}

/**
 * The lifecycle-facing interface for servers (HTTP routes, the gRPC GetStatus / WatchStatus /
 * Drain RPCs). Everything here is cheap and never throws.
 */
export interface LifecycleControl {
  /** The current status. */
  snapshot(): LifecycleSnapshot;
  /** Called on every state change with the snapshot after it; returns the unsubscribe function. */
  subscribe(listener: (snapshot: LifecycleSnapshot, change: StateChange) => void): () => void;
  /** Ask for a drain (idempotent: a drain already under way goes on). Returns the snapshot after. */
  requestDrain(origin: 'http' | 'grpc', reason?: string): LifecycleSnapshot;
  /** Resolves true once the state is `target` (at once if it is), false when `signal` aborts. */
  waitForState(target: AgentStateName, signal?: AbortSignal): Promise<boolean>;
  /**
   * Snapshots while a drain makes progress: one at once, then one after each change of state, and
   * after changes of pending work at most every PROGRESS_INTERVAL_MS (coalesced, and to the
   * consumer's pace); ends after the `safe_to_exit` (or `stopping`) one, or when `signal` aborts.
   */
  drainProgress(signal?: AbortSignal): AsyncIterable<LifecycleSnapshot>;
}

/** The shortest time between two write-back progress snapshots of a drain (drainProgress). */
export const PROGRESS_INTERVAL_MS = 250;

export interface LifecycleMetrics extends DrainMetrics {
  noticeReceived(source: NoticeSource, kind: NoticeKind): void;
}

export interface LifecycleOptions {
  state: AgentState;
  writeback: DrainableQueue;
  bandwidth?: BandwidthControl;
  sources: readonly TerminationSource[];
  drainTimeoutMs: number;
  drainOnRebalance: boolean;
  drainConcurrency: number;
  drainOrder: WriteOrder;
  safeExitFile?: string;
  /** Acknowledge cloud events (Azure StartRequests) once safe to exit. */
  acknowledge: boolean;
  rescan?: () => Promise<void>;
  settle?: () => Promise<void>;
  logger?: Logger;
  metrics?: LifecycleMetrics;
  now?: () => number;
}

export class Lifecycle implements LifecycleControl {
  readonly notices: NoticeStore;
  private readonly handler: DrainHandler;
  private readonly abort = new AbortController();
  private readonly running: Array<Promise<void>> = [];
  private readonly acks: Array<Promise<void>> = [];
  private readonly marker: SafeExitFile | undefined;
  private requests = 0;
  private closing: Promise<void> | undefined;

  constructor(private readonly opts: LifecycleOptions) {
    const now = opts.now ?? Date.now;
    this.notices = new NoticeStore({ drainTimeoutMs: opts.drainTimeoutMs, drainOnRebalance: opts.drainOnRebalance, now });
    this.marker = opts.safeExitFile ? new SafeExitFile(opts.safeExitFile) : undefined;
    this.handler = new DrainHandler({
      state: opts.state,
      writeback: opts.writeback,
      ...(opts.bandwidth ? { bandwidth: opts.bandwidth } : {}),
      drainConcurrency: opts.drainConcurrency,
      drainOrder: opts.drainOrder,
      ...(this.marker ? { marker: this.marker } : {}),
      ...(opts.rescan ? { rescan: opts.rescan } : {}),
      ...(opts.settle ? { settle: opts.settle } : {}),
      onSafeToExit: () => this.acknowledge(),
      notices: () => this.notices.notices(),
      ...(opts.logger ? { logger: opts.logger } : {}),
      ...(opts.metrics ? { metrics: opts.metrics } : {}),
      now,
    });
  }

  /** Resolves when the process should exit: after SIGTERM's drain (or its deadline), or a second signal. */
  get exitRequested(): Promise<ExitOutcome> {
    return this.handler.exitRequested;
  }

  /** Remove a marker a previous run left (this run is not safe to exit yet), then start every source. */
  async start(): Promise<void> {
    await this.marker?.remove();
    for (const source of this.opts.sources) {
      this.running.push(
        source.run((n) => this.notify(n), this.abort.signal).catch((err: unknown) => {
          this.opts.logger?.error({ err, source: source.name }, 'termination source stopped');
        }),
      );
    }
    this.opts.logger?.info({ sources: this.opts.sources.map((s) => s.name) }, 'termination sources started');
  }

  /** Where every notice enters: counted, logged, de-duplicated and decided on by the store. */
  notify(notice: TerminationNotice): void {
    if (this.abort.signal.aborted) return;
    const decision = this.notices.add(notice);
    if (!decision) return;
    this.opts.metrics?.noticeReceived(notice.source, notice.kind);
    this.opts.logger?.info({ notice: describeNotice(notice), action: decision.action }, 'termination notice');
    this.handler.handle(decision);
  }

  requestDrain(origin: 'http' | 'grpc', reason?: string): LifecycleSnapshot {
    this.requests++;
    this.notify({ id: `request-${this.requests}`, kind: 'drain', source: origin, ...(reason ? { detail: { reason } } : {}) });
    return this.snapshot();
  }

  snapshot(): LifecycleSnapshot {
    const { state } = this.opts;
    const wb = this.opts.writeback.status();
    const deadline = this.notices.deadline();
    const exitBy = this.notices.exitBy;
    const started = this.handler.drainStarted;
    return {
      state: state.state,
      stateSince: new Date(state.enteredAt).toISOString(),
      ...(started !== undefined ? { drainStartedAt: new Date(started).toISOString() } : {}),
      ...(deadline !== undefined ? { deadline: new Date(deadline).toISOString() } : {}),
      ...(exitBy !== undefined ? { exitBy: new Date(exitBy).toISOString() } : {}),
      pendingOutputs: wb.pendingOutputs,
      pendingBytes: wb.pendingBytes,
      persistedOutputs: wb.persistedOutputs,
      persistedBytes: wb.persistedBytes,
      notices: this.notices.notices().map(describeNotice),
    };
  }

  subscribe(listener: (snapshot: LifecycleSnapshot, change: StateChange) => void): () => void {
    const onChange = (change: StateChange): void => {
      try {
        listener(this.snapshot(), change);
      } catch (err) {
        this.opts.logger?.error({ err }, 'state listener failed');
      }
    };
    this.opts.state.on('change', onChange);
    return () => void this.opts.state.off('change', onChange);
  }

  waitForState(target: AgentStateName, signal?: AbortSignal): Promise<boolean> {
    return this.opts.state.whenState(target, signal);
  }

  async *drainProgress(signal?: AbortSignal): AsyncIterable<LifecycleSnapshot> {
    // A snapshot walks every pending output (about 2 ms with 3,000 pending) and the write-back
    // changes once per file stored: taken at each change, a stream read as fast as it is written
    // would spend the drain's own main thread on snapshots. Write-back progress goes out at most
    // every PROGRESS_INTERVAL_MS; a change of state (safe_to_exit above all) at once.
    let queueDirty = true;
    let stateDirty = false;
    let wake: (() => void) | undefined;
    let timer: NodeJS.Timeout | undefined;
    let last = -Infinity;
    const onQueue = (): void => {
      if (queueDirty) return;
      queueDirty = true;
      wake?.();
    };
    const onState = (): void => {
      stateDirty = true;
      wake?.();
    };
    this.opts.writeback.on('change', onQueue);
    this.opts.state.on('change', onState);
    signal?.addEventListener('abort', onState);
    try {
      for (;;) {
        for (;;) {
          if (signal?.aborted) return;
          if (stateDirty) break;
          const due = last + PROGRESS_INTERVAL_MS - performance.now();
          if (queueDirty && due <= 0) break;
          await new Promise<void>((resolve) => {
            wake = resolve;
            if (queueDirty) timer = setTimeout(resolve, due);
          });
          clearTimeout(timer);
          wake = undefined;
        }
        queueDirty = false;
        stateDirty = false;
        last = performance.now();
        const snap = this.snapshot();
        yield snap;
        if (snap.state === 'safe_to_exit' || snap.state === 'stopping') return;
      }
    } finally {
      clearTimeout(timer);
      this.opts.writeback.off('change', onQueue);
      this.opts.state.off('change', onState);
      signal?.removeEventListener('abort', onState);
    }
  }

  /** Stop every source and the handler; waits for acknowledgements under way. Idempotent. */
  close(): Promise<void> {
    return (this.closing ??= (async () => {
      this.abort.abort();
      await Promise.allSettled(this.running);
      await Promise.allSettled(this.acks);
      await this.handler.close();
    })());
  }

  private acknowledge(): void {
    if (!this.opts.acknowledge) return;
    const bySource = new Map<string, AcknowledgingSource>();
    for (const s of this.opts.sources) if (isAcknowledging(s)) bySource.set(s.name, s);
    for (const notice of this.notices.notices()) {
      const source = bySource.get(notice.source);
      if (source) this.acks.push(source.acknowledge(notice, this.abort.signal));
    }
  }
}
