/**
 * The status documents (`/v1/status`) and the readiness policy (`/readyz`), built from what the
 * agent's parts report. Two views: `open` (state, counts, readiness; nothing per app, for any
 * peer) and `full` (apps, paths, failures; for loopback peers), both bounded in size.
 */
import type { LifecycleSnapshot } from './lifecycle.js';
import type { AgentStateName } from './agent-state.js';
import type { StoreHealthSnapshot } from './store-health.js';
import type { WritebackStatus } from '../writeback/writeback-queue.js';

/** Apps and failures listed in the status document at most (the counts are exact). */
export const MAX_STATUS_APPS = 100;
export const MAX_STATUS_FAILED = 50;

export interface StatusSources {
  version: string;
  writeback: () => WritebackStatus;
  apps: () => readonly string[];
  problems: () => ReadonlyArray<{ path: string; kind: string; message: string }>;
  lifecycle: () => LifecycleSnapshot;
  store: () => StoreHealthSnapshot;
  /** Fixed facts for the full document. */
  facts: { appId: string; localDirs: readonly string[]; localDirsLayout: string; store: string };
}

export interface Readiness {
  ready: boolean;
  /** Why not, in a few words with an error code; never a key or an app id (probes are open). */
  reason?: string;
}

/**
 * Ready means: serving or draining (not starting or stopping), the store answered its last probe,
 * and no write was refused for good (credentials, permissions, a missing bucket need a human).
 */
export function readiness(state: AgentStateName, store: StoreHealthSnapshot, wb: Pick<WritebackStatus, 'failed'>): Readiness {
  if (state === 'starting' || state === 'stopping') return { ready: false, reason: state };
  if (store.ok === undefined) return { ready: false, reason: 'store not probed yet' };
  if (!store.ok) return { ready: false, reason: `store ${store.kind === 'permanent' ? 'refuses writes' : 'does not answer'} (${String(store.code).slice(0, 64)})` };
  const permanent = wb.failed.find((f) => f.kind === 'permanent');
  if (permanent) return { ready: false, reason: `store refuses writes (${String(permanent.code).slice(0, 64)})` };
  return { ready: true };
}

export function statusDocuments(src: StatusSources): { open: () => Record<string, unknown>; full: () => Record<string, unknown>; readiness: () => Readiness } {
  /** What any peer may see: the node's state and counts, nothing per app (no ids, paths, errors). */
  const open = (wb = src.writeback(), life = src.lifecycle(), problems = src.problems().length): Record<string, unknown> => {
    const store = src.store();
    const ready = readiness(life.state, store, wb);
    return {
      state: life.state,
      stateSince: life.stateSince,
      ...(life.drainStartedAt ? { drainStartedAt: life.drainStartedAt } : {}),
      ...(life.deadline ? { deadline: life.deadline } : {}),
      ...(life.exitBy ? { exitBy: life.exitBy } : {}),
      version: src.version,
      ready: ready.ready,
      ...(ready.reason !== undefined ? { notReadyReason: ready.reason } : {}),
      storeHealth: store,
      pendingOutputs: wb.pendingOutputs,
      pendingBytes: wb.pendingBytes,
      persistedOutputs: wb.persistedOutputs,
      persistedBytes: wb.persistedBytes,
      failedFiles: wb.failedFiles + problems,
      detail: 'open',
    };
  };
  const full = (): Record<string, unknown> => {
    const wb = src.writeback();
    const problems = src.problems();
    const life = src.lifecycle();
    const apps = src.apps();
    // Only what is listed is built: a node with 20,000 problems answers in constant work and size.
    const failed = [...wb.failed.slice(0, MAX_STATUS_FAILED), ...wb.rejected.slice(0, MAX_STATUS_FAILED), ...problems.slice(0, MAX_STATUS_FAILED).map((p) => ({ file: p.path, kind: p.kind, error: p.message }))];
    return {
      ...open(wb, life, problems.length),
      notices: life.notices,
      appId: src.facts.appId,
      // Bounded: a node with thousands of apps or failures answers in constant size.
      apps: apps.slice(0, MAX_STATUS_APPS),
      appCount: apps.length,
      localDirs: src.facts.localDirs,
      localDirsLayout: src.facts.localDirsLayout,
      store: src.facts.store,
      pendingFiles: wb.pendingFiles,
      uploadingOutputs: wb.uploadingOutputs,
      heldOutputs: wb.heldOutputs,
      persistedFiles: wb.persistedFiles,
      droppedOutputs: wb.droppedOutputs,
      failed: failed.slice(0, MAX_STATUS_FAILED).map((f) => ({ ...f, error: String(f.error).slice(0, 300) })),
      detail: 'full',
    };
  };
  return { open, full, readiness: () => readiness(src.lifecycle().state, src.store(), src.writeback()) };
}
