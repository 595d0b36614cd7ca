/**
 * The narrow interfaces the gRPC block service is built on. `agent/main.ts` passes real
 * implementations (the write-back queue, the store, the lifecycle state machine, prom-client
 * metrics); tests pass plain objects.
 */
import type { OutputView } from '../writeback/writeback-queue.js';

/** The map outputs the agent knows: `WritebackQueue` satisfies it. */
export interface OutputLookup {
  /** One output by id `<appId>/<shuffleId>/<mapId>`. */
  get(id: string): OutputView | undefined;
  /** Every output known, optionally of one app. */
  list(appId?: string): OutputView[];
}

/** Lifecycle states (issue 5 owns the transition table). */
export type AgentState = 'starting' | 'serving' | 'draining' | 'safe_to_exit' | 'stopping';

/** What GetStatus / WatchStatus report. */
export interface StatusSnapshot {
  state: AgentState;
  /** When the agent entered `state`, ms since the epoch. */
  since: number;
  /** Why the agent drains (termination notice, drain request), when it does. */
  reason?: string;
  /** When the agent expects to be stopped, ms since the epoch, when known. */
  deadline?: number;
  pendingOutputs: number;
  pendingBytes: number;
  persistedOutputs: number;
  persistedBytes: number;
  failedFiles: number;
}

/** One message of a Drain stream. */
export interface DrainProgress {
  status: StatusSnapshot;
  /** True on the last value: everything committed is stored (state `safe_to_exit`). */
  done: boolean;
}

/**
 * The agent's lifecycle as the gRPC service sees it. Implemented by `agent/lifecycle/` (issue 5).
 */
export interface LifecycleView {
  status(): StatusSnapshot;
  /** Called at every change of state, with the new status. Returns the unsubscribe function. */
  onStateChange(listener: (status: StatusSnapshot) => void): () => void;
  /**
   * Start a drain (idempotent: joins one that runs) and report its progress: the first value at
   * once, then on progress, the last with `done: true`. `signal` aborts when the caller goes
   * away; it ends the iteration only, never the drain itself.
   */
  drain(reason: string, signal: AbortSignal): AsyncIterable<DrainProgress>;
}

/** Where served bytes came from. */
export type BlockSourceKind = 'local' | 'store';

/**
 * Metrics of the service (prom-client behind it in main.ts). Low cardinality: never labelled
 * by app, shuffle or map id.
 */
export interface ServeMetrics {
  /** A fetch ended (complete, cancelled or failed) after sending `bytes` read from `source`. */
  fetch(source: BlockSourceKind, bytes: number): void;
  /** An RPC ended with a non-OK gRPC status; `code` is the status name, e.g. `NOT_FOUND`. */
  error(code: string): void;
  /** A server stream began (fetch, list, watch, drain). */
  streamOpened(): void;
  /** A server stream ended, whichever way. */
  streamClosed(): void;
}

/** Does nothing: the default when no metrics are wired. */
export const NO_METRICS: ServeMetrics = {
  fetch: () => undefined,
  error: () => undefined,
  streamOpened: () => undefined,
  streamClosed: () => undefined,
};
