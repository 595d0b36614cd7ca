/**
 * The one place that acts on decisions. A drain lifts the store's bandwidth ceiling, raises the
 * write-back concurrency, retries failed writes at once and switches to the drain order, while
 * the watcher keeps picking up new outputs and the block service keeps serving. When nothing
 * committed is pending the agent is `safe_to_exit` (marker file written); a newly committed
 * output sends it back to `draining` (marker removed). An `exit` decision additionally resolves
 * `exitRequested` when the drain completes or its deadline passes, whichever comes first.
 */
import type { Logger } from 'pino';
import type { WriteOrder, WritebackStatus } from '../writeback/writeback-queue.js';
import type { AgentState, StateChange } from './agent-state.js';
import type { Decision } from './notice-store.js';
import { describeNotice, type TerminationNotice } from './notice.js';
import type { SafeExitFile } from './safe-exit-file.js';

/** Longest wait between write attempts while draining (the normal ceiling is 30 s). */
export const DRAIN_MAX_RETRY_DELAY_MS = 1000;

/** The few write-back queue methods a drain needs. */
export interface DrainableQueue {
  isIdle(): boolean;
  status(): Pick<WritebackStatus, 'pendingOutputs' | 'pendingBytes' | 'persistedOutputs' | 'persistedBytes'>;
  setConcurrency(concurrency: number): void;
  setOrder(order: WriteOrder): void;
  retryNow(): void;
  /** Cap the retry backoff: with a deadline seconds away, waiting 30 s between attempts wastes it. */
  setMaxRetryDelay(ms: number): void;
  on(event: 'change', listener: () => void): unknown;
  off(event: 'change', listener: () => void): unknown;
}

/** A store that can lift its upload ceiling (S3Store). 0 means no limit. */
export interface BandwidthControl {
  setBandwidthLimit(bytesPerSecond: number): void;
}

export function hasBandwidthControl(store: unknown): store is BandwidthControl {
  return typeof (store as Partial<BandwidthControl> | undefined)?.setBandwidthLimit === 'function';
}

export interface DrainMetrics {
  drainStarted(): void;
  /** Seconds from the start of a drain to `safe_to_exit`. */
  safeToExit(seconds: number): void;
}

export interface ExitOutcome {
  /** `drained`: nothing pending; `deadline`: the drain timeout passed; `second-signal`: told to stop now. */
  reason: 'drained' | 'deadline' | 'second-signal';
  notice: TerminationNotice;
}

export interface DrainHandlerOptions {
  state: AgentState;
  writeback: DrainableQueue;
  /** The store, when it has an upload ceiling to lift. */
  bandwidth?: BandwidthControl;
  /** Write-back concurrency while draining (never lowered below the current one). */
  drainConcurrency: number;
  drainOrder: WriteOrder;
  marker?: SafeExitFile;
  /** A full pass over the local dirs, started when a drain starts (Spark's rule: the last pass
   * must start after the last task finished); awaited before the first `safe_to_exit`. */
  rescan?: () => Promise<void>;
  /** Resolves when the watcher has no check in flight; awaited before every `safe_to_exit`. */
  settle?: () => Promise<void>;
  /** Called on every entry into `safe_to_exit` (acknowledges cloud events). */
  onSafeToExit?: () => void;
  /** Notices in effect, for the marker file. */
  notices?: () => TerminationNotice[];
  logger?: Logger;
  metrics?: DrainMetrics;
  now?: () => number;
}

export class DrainHandler {
  private readonly now: () => number;
  private sped = false;
  private drainStartedAt: number | undefined;
  private pass: Promise<void> | undefined;
  private evaluating = false;
  private again = false;
  private markerOps: Promise<void> = Promise.resolve();
  private exitNotice: TerminationNotice | undefined;
  private exitTimer: NodeJS.Timeout | undefined;
  private resolveExit!: (outcome: ExitOutcome) => void;
  private exitDecided = false;
  private closed = false;
  /** Resolves once the process should exit (after an `exit` or `exit-now` decision). */
  readonly exitRequested: Promise<ExitOutcome>;

  constructor(private readonly opts: DrainHandlerOptions) {
    this.now = opts.now ?? Date.now;
    this.exitRequested = new Promise((resolve) => (this.resolveExit = resolve));
    opts.writeback.on('change', this.onQueueChange);
    opts.state.on('change', this.onStateChange);
  }

  /** When the current drain started (ms since epoch), if one did. */
  get drainStarted(): number | undefined {
    return this.drainStartedAt;
  }

  handle(decision: Decision): void {
    if (this.closed) return;
    const { notice } = decision;
    switch (decision.action) {
      case 'speed-up':
        this.opts.logger?.info({ notice: describeNotice(notice) }, 'early termination warning; writing back faster');
        this.speedUp();
        return;
      case 'drain':
        this.startDrain(notice);
        return;
      case 'exit': {
        this.exitNotice = notice;
        const ms = Math.max(0, decision.deadline - this.now());
        this.opts.logger?.info({ notice: describeNotice(notice), drainTimeoutMs: ms }, 'asked to exit; draining until the deadline');
        this.exitTimer = setTimeout(() => this.decideExit('deadline'), ms);
        this.startDrain(notice);
        if (this.opts.state.state === 'safe_to_exit') this.decideExit('drained');
        return;
      }
      case 'exit-now':
        this.opts.logger?.warn({ notice: describeNotice(notice) }, 'asked again to exit; exiting now');
        this.decideExit('second-signal', notice);
        return;
    }
  }

  /** Stop reacting; the marker is left as it is (it stays true for a stopped agent that was safe). */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.exitTimer);
    this.opts.writeback.off('change', this.onQueueChange);
    this.opts.state.off('change', this.onStateChange);
    await this.markerOps;
  }

  private speedUp(): void {
    if (this.sped) {
      this.opts.writeback.retryNow();
      return;
    }
    this.sped = true;
    this.opts.bandwidth?.setBandwidthLimit(0);
    this.opts.writeback.setConcurrency(this.opts.drainConcurrency);
    this.opts.writeback.setMaxRetryDelay(DRAIN_MAX_RETRY_DELAY_MS);
    this.opts.writeback.retryNow();
  }

  private startDrain(notice: TerminationNotice): void {
    this.speedUp();
    if (this.drainStartedAt === undefined) {
      this.drainStartedAt = this.now();
      this.opts.writeback.setOrder(this.opts.drainOrder);
      this.opts.metrics?.drainStarted();
      const status = this.opts.writeback.status();
      this.opts.logger?.info(
        { notice: describeNotice(notice), pendingOutputs: status.pendingOutputs, pendingBytes: status.pendingBytes, order: this.opts.drainOrder },
        'drain started',
      );
      this.pass = this.opts.rescan?.().catch((err: unknown) => this.opts.logger?.warn({ err }, 'rescan at drain start failed'));
    }
    // `starting -> draining` is allowed too; from `safe_to_exit` nothing changes unless work appears.
    if (this.opts.state.state === 'serving' || this.opts.state.state === 'starting') {
      this.opts.state.transition('draining', `${notice.source} ${notice.kind} notice`);
    }
    this.evaluate();
  }

  private readonly onQueueChange = (): void => {
    if (this.drainStartedAt === undefined) return;
    // Leaving safe_to_exit is synchronous: no reader may see `safe_to_exit` once work is pending.
    if (this.opts.state.state === 'safe_to_exit' && !this.opts.writeback.isIdle()) {
      this.opts.state.transition('draining', 'new output committed');
    }
    this.evaluate();
  };

  private readonly onStateChange = (change: StateChange): void => {
    // Leaving safe_to_exit for draining removes the marker; `stopping` leaves it as it is (an
    // agent that stops after a complete drain was safe to exit).
    if (change.to === 'draining') this.syncMarker();
    if (change.to === 'safe_to_exit' && this.exitNotice) this.decideExit('drained');
  };

  /** Re-check whether the drain is complete (or no longer complete). Runs one check at a time. */
  private evaluate(): void {
    if (this.evaluating) {
      this.again = true;
      return;
    }
    this.evaluating = true;
    void (async () => {
      try {
        do {
          this.again = false;
          await this.evaluateOnce();
        } while (this.again && !this.closed);
      } catch (err) {
        this.opts.logger?.error({ err }, 'drain check failed');
      } finally {
        this.evaluating = false;
      }
    })();
  }

  private async evaluateOnce(): Promise<void> {
    const { state, writeback } = this.opts;
    if (state.state !== 'draining' || !writeback.isIdle()) return;
    await this.pass;
    await this.opts.settle?.();
    if (this.closed || state.state !== 'draining' || !writeback.isIdle()) return;
    // The marker goes first, so whoever sees `safe_to_exit` (HTTP, gRPC) also finds the file.
    await this.writeMarker();
    if (this.closed || state.state !== 'draining' || !writeback.isIdle()) {
      this.syncMarker();
      return;
    }
    const seconds = (this.now() - (this.drainStartedAt ?? this.now())) / 1000;
    if (state.transition('safe_to_exit', 'nothing committed is pending')) {
      this.opts.metrics?.safeToExit(seconds);
      this.opts.onSafeToExit?.();
    }
  }

  /** Remove the marker while the state is `draining`; operations run in order. */
  private syncMarker(): void {
    const marker = this.opts.marker;
    if (!marker) return;
    this.markerOps = this.markerOps.then(async () => {
      try {
        if (this.opts.state.state === 'draining') await marker.remove();
      } catch (err) {
        this.opts.logger?.error({ err }, 'safe-exit file not removed');
      }
    });
  }

  /** Write the marker for the `safe_to_exit` about to be entered (in order with removals). */
  private writeMarker(): Promise<void> {
    const marker = this.opts.marker;
    if (!marker) return Promise.resolve();
    this.markerOps = this.markerOps.then(async () => {
      try {
        await marker.write({ ...this.summary(), state: 'safe_to_exit', since: new Date(this.now()).toISOString() });
      } catch (err) {
        this.opts.logger?.error({ err }, 'safe-exit file not written');
      }
    });
    return this.markerOps;
  }

  /** The JSON document of the marker file. */
  summary(): Record<string, unknown> {
    const status = this.opts.writeback.status();
    return {
      state: this.opts.state.state,
      since: new Date(this.opts.state.enteredAt).toISOString(),
      drainStartedAt: this.drainStartedAt === undefined ? null : new Date(this.drainStartedAt).toISOString(),
      pendingOutputs: status.pendingOutputs,
      persistedOutputs: status.persistedOutputs,
      persistedBytes: status.persistedBytes,
      notices: (this.opts.notices?.() ?? []).map(describeNotice),
      pid: process.pid,
    };
  }

  private decideExit(reason: ExitOutcome['reason'], notice?: TerminationNotice): void {
    if (this.exitDecided) return;
    this.exitDecided = true;
    clearTimeout(this.exitTimer);
    this.resolveExit({ reason, notice: notice ?? (this.exitNotice as TerminationNotice) });
  }
}
