/**
 * The lifecycle in the shape the gRPC service asks for (`LifecycleView` in agent/serve/types.ts:
 * GetStatus, WatchStatus, Drain). Structural: main.ts passes `lifecycleView(...)` as the gRPC
 * server's `lifecycle` dependency.
 */
import type { AgentStateName } from './agent-state.js';
import type { LifecycleControl, LifecycleSnapshot } from './lifecycle.js';

export interface StatusView {
  state: AgentStateName;
  /** When the agent entered `state`, ms since the epoch. */
  since: number;
  /** Why the agent drains: the first notice, e.g. `aws terminate`, when it does. */
  reason?: string;
  /** When writing back must be done (the earliest notice deadline), ms since the epoch. */
  deadline?: number;
  pendingOutputs: number;
  pendingBytes: number;
  persistedOutputs: number;
  persistedBytes: number;
  failedFiles: number;
}

export interface DrainProgressView {
  status: StatusView;
  /** True on the last value: everything committed is stored (`safe_to_exit`). */
  done: boolean;
}

export interface LifecycleViewShape {
  status(): StatusView;
  onStateChange(listener: (status: StatusView) => void): () => void;
  drain(reason: string, signal: AbortSignal): AsyncIterable<DrainProgressView>;
}

/** Adapt the lifecycle; `failedFiles` comes from the write-back queue (and watcher) status. */
export function lifecycleView(lifecycle: LifecycleControl, failedFiles: () => number): LifecycleViewShape {
  const view = (s: LifecycleSnapshot): StatusView => {
    const first = s.notices[0];
    return {
      state: s.state,
      since: Date.parse(s.stateSince),
      ...(first ? { reason: `${String(first.source)} ${String(first.kind)}` } : {}),
      ...(s.deadline ? { deadline: Date.parse(s.deadline) } : {}),
      pendingOutputs: s.pendingOutputs,
      pendingBytes: s.pendingBytes,
      persistedOutputs: s.persistedOutputs,
      persistedBytes: s.persistedBytes,
      failedFiles: failedFiles(),
    };
  };
  return {
    status: () => view(lifecycle.snapshot()),
    onStateChange: (listener) => lifecycle.subscribe((snapshot) => listener(view(snapshot))),
    async *drain(reason, signal) {
      lifecycle.requestDrain('grpc', reason);
      for await (const s of lifecycle.drainProgress(signal)) yield { status: view(s), done: s.state === 'safe_to_exit' };
    },
  };
}
