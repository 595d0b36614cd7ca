/**
 * The lifecycle in the shape the gRPC service asks for (`LifecycleView` in agent/serve/types.ts:
 * GetStatus, WatchStatus, Drain). Structural: main.ts passes `lifecycleView(...)` as the gRPC
 * server's `lifecycle` dependency.
 */
import type { LifecycleView, StatusSnapshot } from '../serve/types.js';
import type { LifecycleControl, LifecycleSnapshot } from './lifecycle.js';

/** Adapt the lifecycle; `failedFiles` comes from the write-back queue (and watcher) status. */
export function lifecycleView(lifecycle: LifecycleControl, failedFiles: () => number): LifecycleView {
  const view = (s: LifecycleSnapshot): StatusSnapshot => {
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
