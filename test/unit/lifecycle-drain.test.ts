import { EventEmitter } from 'node:events';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AgentState } from '../../agent/lifecycle/agent-state.js';
import type { DrainableQueue } from '../../agent/lifecycle/drain-handler.js';
import { Lifecycle, type LifecycleSnapshot } from '../../agent/lifecycle/lifecycle.js';
import { SignalSource } from '../../agent/lifecycle/sources/signal-source.js';
import type { AcknowledgingSource, EmitNotice, TerminationNotice } from '../../agent/lifecycle/notice.js';
import type { WriteOrder } from '../../agent/writeback/writeback-queue.js';

/** A write-back queue reduced to what a drain touches: a pending count and the knobs. */
class FakeQueue extends EventEmitter<{ change: [] }> implements DrainableQueue {
  pending = 0;
  persisted = 0;
  concurrency = 4;
  order: WriteOrder = 'fifo';
  retries = 0;
  isIdle(): boolean {
    return this.pending === 0;
  }
  status(): { pendingOutputs: number; pendingBytes: number; persistedOutputs: number; persistedBytes: number } {
    return { pendingOutputs: this.pending, pendingBytes: this.pending * 100, persistedOutputs: this.persisted, persistedBytes: this.persisted * 100 };
  }
  setConcurrency(n: number): void {
    this.concurrency = n;
  }
  setOrder(order: WriteOrder): void {
    this.order = order;
  }
  retryNow(): void {
    this.retries++;
  }
  maxRetryDelay = 30_000;
  setMaxRetryDelay(ms: number): void {
    this.maxRetryDelay = ms;
  }
  commit(n = 1): void {
    this.pending += n;
    this.emit('change');
  }
  store(n = 1): void {
    this.pending -= n;
    this.persisted += n;
    this.emit('change');
  }
}

/** A source the test drives by hand. */
class ManualSource implements AcknowledgingSource {
  readonly name = 'azure' as const;
  emit: EmitNotice = () => undefined;
  acked: string[] = [];
  run(emit: EmitNotice, signal: AbortSignal): Promise<void> {
    this.emit = emit;
    return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
  }
  acknowledge(notice: TerminationNotice): Promise<void> {
    this.acked.push(notice.id);
    return Promise.resolve();
  }
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lifecycle-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function setup(extra: { drainTimeoutMs?: number; acknowledge?: boolean } = {}) {
  const state = new AgentState();
  state.transition('serving', 'test');
  const queue = new FakeQueue();
  const limits: number[] = [];
  const signals = new EventEmitter();
  const manual = new ManualSource();
  let rescans = 0;
  const lifecycle = new Lifecycle({
    state,
    writeback: queue,
    bandwidth: { setBandwidthLimit: (b) => limits.push(b) },
    sources: [new SignalSource(signals), manual],
    drainTimeoutMs: extra.drainTimeoutMs ?? 60_000,
    drainOnRebalance: false,
    drainConcurrency: 16,
    drainOrder: 'smallest-first',
    safeExitFile: join(dir, 'safe', 'marker.json'),
    acknowledge: extra.acknowledge ?? true,
    rescan: async () => {
      rescans++;
    },
  });
  return { state, queue, limits, signals, manual, lifecycle, marker: join(dir, 'safe', 'marker.json'), rescans: () => rescans };
}

const exists = (p: string): Promise<boolean> => stat(p).then(() => true, () => false);

describe('drain handler through the lifecycle', () => {
  it('a cloud notice lifts the ceiling, raises concurrency, retries, reorders; safe_to_exit once idle; marker written atomically; event acknowledged', async () => {
    const t = setup();
    await t.lifecycle.start();
    t.queue.commit(3);
    t.manual.emit({ id: 'ev-1', kind: 'terminate', source: 'azure', deadline: Date.now() + 30_000 });
    t.manual.emit({ id: 'ev-1', kind: 'terminate', source: 'azure', deadline: Date.now() + 30_000 });
    expect(t.state.state).toBe('draining');
    expect(t.limits).toEqual([0]);
    expect(t.queue.concurrency).toBe(16);
    expect(t.queue.order).toBe('smallest-first');
    expect(t.queue.retries).toBe(1);
    expect(t.queue.maxRetryDelay).toBe(1000);
    expect(t.rescans()).toBe(1);
    const safe = t.lifecycle.waitForState('safe_to_exit');
    t.queue.store(2);
    expect(t.state.state).toBe('draining');
    t.queue.store(1);
    await safe;
    expect(t.state.state).toBe('safe_to_exit');
    await t.lifecycle.close();
    const summary = JSON.parse(await readFile(t.marker, 'utf8')) as Record<string, unknown>;
    expect(summary).toMatchObject({ state: 'safe_to_exit', pendingOutputs: 0, persistedOutputs: 3 });
    expect((summary.notices as Array<{ id: string }>).map((n) => n.id)).toEqual(['ev-1']);
    expect(t.manual.acked).toEqual(['ev-1']);
  });

  it('goes back to draining (marker removed) when an output is committed while safe_to_exit, and returns', async () => {
    const t = setup({ acknowledge: false });
    await t.lifecycle.start();
    t.lifecycle.requestDrain('http');
    await t.lifecycle.waitForState('safe_to_exit');
    const seen: string[] = [];
    const unsubscribe = t.lifecycle.subscribe((snap) => seen.push(snap.state));
    t.queue.commit();
    expect(t.state.state).toBe('draining');
    t.queue.store();
    await t.lifecycle.waitForState('safe_to_exit');
    t.queue.commit();
    unsubscribe();
    t.queue.store();
    await t.lifecycle.waitForState('safe_to_exit');
    expect(seen).toEqual(['draining', 'safe_to_exit', 'draining']);
    await t.lifecycle.close();
    expect(await exists(t.marker)).toBe(true);
    expect(t.manual.acked).toEqual([]);
  });

  it('marker follows the state: absent while draining after a new commit', async () => {
    const t = setup();
    await t.lifecycle.start();
    t.lifecycle.requestDrain('grpc');
    await t.lifecycle.waitForState('safe_to_exit');
    t.queue.commit();
    // Close waits for the queued marker operations: the last one reflects `draining`.
    await t.lifecycle.close();
    expect(t.state.state).toBe('draining');
    expect(await exists(t.marker)).toBe(false);
  });

  it('SIGTERM: exit requested once drained; the deadline and a second signal end it early', async () => {
    const drained = setup();
    await drained.lifecycle.start();
    drained.queue.commit(2);
    drained.signals.emit('SIGTERM', 'SIGTERM');
    expect(drained.state.state).toBe('draining');
    drained.queue.store(2);
    await expect(drained.lifecycle.exitRequested).resolves.toMatchObject({ reason: 'drained', notice: { id: 'SIGTERM#1' } });
    await drained.lifecycle.close();

    const late = setup({ drainTimeoutMs: 50 });
    await late.lifecycle.start();
    late.queue.commit(1);
    const t0 = Date.now();
    late.signals.emit('SIGTERM', 'SIGTERM');
    await expect(late.lifecycle.exitRequested).resolves.toMatchObject({ reason: 'deadline' });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(45);
    expect(late.state.state).toBe('draining');
    await late.lifecycle.close();

    const twice = setup();
    await twice.lifecycle.start();
    twice.queue.commit(1);
    twice.signals.emit('SIGTERM', 'SIGTERM');
    twice.signals.emit('SIGINT', 'SIGINT');
    await expect(twice.lifecycle.exitRequested).resolves.toMatchObject({ reason: 'second-signal', notice: { id: 'SIGINT#2' } });
    await twice.lifecycle.close();
    expect(twice.signals.listenerCount('SIGTERM')).toBe(0);
  });

  it('a rebalance recommendation speeds up without draining', async () => {
    const t = setup();
    await t.lifecycle.start();
    t.lifecycle.notify({ id: 'rebalance:x', kind: 'rebalance', source: 'aws' });
    expect(t.state.state).toBe('serving');
    expect(t.limits).toEqual([0]);
    expect(t.queue.concurrency).toBe(16);
    expect(t.queue.order).toBe('fifo');
    await t.lifecycle.close();
  });

  it('drainProgress yields snapshots as work is stored and ends at safe_to_exit', async () => {
    const t = setup();
    await t.lifecycle.start();
    t.queue.commit(3);
    t.lifecycle.requestDrain('grpc', 'test');
    const seen: LifecycleSnapshot[] = [];
    const consume = (async () => {
      for await (const snap of t.lifecycle.drainProgress()) {
        seen.push(snap);
        if (snap.pendingOutputs > 0) t.queue.store(1);
      }
    })();
    await consume;
    expect(seen[0]?.pendingOutputs).toBe(3);
    expect(seen.at(-1)?.state).toBe('safe_to_exit');
    expect(seen.at(-1)?.pendingOutputs).toBe(0);
    expect(seen.map((s) => s.pendingOutputs)).toEqual([...seen.map((s) => s.pendingOutputs)].sort((a, b) => b - a));
    expect(t.queue.listenerCount('change')).toBe(1); // only the handler's own listener is left
    await t.lifecycle.close();
  });

  it('drainProgress sends write-back progress at most every PROGRESS_INTERVAL_MS, however fast the work changes', async () => {
    const { PROGRESS_INTERVAL_MS } = await import('../../agent/lifecycle/lifecycle.js');
    const t = setup();
    await t.lifecycle.start();
    const total = 400;
    t.queue.commit(total);
    t.lifecycle.requestDrain('grpc', 'test');
    // One output stored per turn of the event loop: hundreds of changes in a few hundred ms.
    let stored = 0;
    const producer = (async () => {
      while (stored < total) {
        await new Promise((resolve) => setImmediate(resolve));
        t.queue.store(1);
        stored++;
        if (stored % 100 === 0) await new Promise((resolve) => setTimeout(resolve, PROGRESS_INTERVAL_MS / 2));
      }
    })();
    const seen: Array<{ at: number; snap: LifecycleSnapshot }> = [];
    for await (const snap of t.lifecycle.drainProgress()) seen.push({ at: performance.now(), snap });
    await producer;
    expect(seen.at(-1)?.snap).toMatchObject({ state: 'safe_to_exit', pendingOutputs: 0 });
    const progress = seen.filter((s) => s.snap.state === 'draining');
    expect(progress.length).toBeGreaterThan(1);
    expect(progress.length).toBeLessThan(total / 20);
    // Timers may fire up to a millisecond early against performance.now().
    for (let i = 1; i < progress.length; i++) expect((progress[i] as { at: number }).at - (progress[i - 1] as { at: number }).at).toBeGreaterThanOrEqual(PROGRESS_INTERVAL_MS - 2);
    await t.lifecycle.close();
  });

  it('the gRPC view: status, state-change subscription and a Drain stream that ends with done', async () => {
    const { lifecycleView } = await import('../../agent/lifecycle/status-view.js');
    const t = setup();
    await t.lifecycle.start();
    const view = lifecycleView(t.lifecycle, () => 2);
    expect(view.status()).toMatchObject({ state: 'serving', pendingOutputs: 0, failedFiles: 2 });
    const changes: string[] = [];
    const off = view.onStateChange((s) => changes.push(s.state));
    t.queue.commit(2);
    const progress: Array<{ pending: number; done: boolean }> = [];
    for await (const p of view.drain('operator', new AbortController().signal)) {
      progress.push({ pending: p.status.pendingOutputs, done: p.done });
      if (p.status.pendingOutputs > 0) t.queue.store(1);
    }
    off();
    expect(progress.at(0)).toEqual({ pending: 2, done: false });
    expect(progress.at(-1)).toEqual({ pending: 0, done: true });
    expect(progress.filter((p) => p.done)).toHaveLength(1);
    expect(changes).toEqual(['draining', 'safe_to_exit']);
    expect(view.status()).toMatchObject({ state: 'safe_to_exit', reason: 'grpc drain' });
    await t.lifecycle.close();
  });

  it('stopping after a complete drain keeps the marker', async () => {
    const t = setup();
    await t.lifecycle.start();
    t.lifecycle.requestDrain('http');
    await t.lifecycle.waitForState('safe_to_exit');
    t.state.transition('stopping', 'closing');
    await t.lifecycle.close();
    expect(await exists(t.marker)).toBe(true);
  });

  it('a notice during the initial scan drains at once; the end of the scan cannot make it serving', async () => {
    const state = new AgentState();
    const queue = new FakeQueue();
    const lifecycle = new Lifecycle({ state, writeback: queue, sources: [], drainTimeoutMs: 1000, drainOnRebalance: false, drainConcurrency: 8, drainOrder: 'fifo', acknowledge: false });
    await lifecycle.start();
    queue.commit(1);
    lifecycle.notify({ id: 'preempted', kind: 'terminate', source: 'gcp' });
    expect(state.state).toBe('draining');
    expect(state.transition('serving', 'initial scan done')).toBe(false);
    queue.store(1);
    await lifecycle.waitForState('safe_to_exit');
    await lifecycle.close();
  });

  it('removes a marker a previous run left behind at start', async () => {
    const t = setup();
    const { SafeExitFile } = await import('../../agent/lifecycle/safe-exit-file.js');
    await new SafeExitFile(t.marker).write({ state: 'safe_to_exit' });
    expect(await exists(t.marker)).toBe(true);
    await t.lifecycle.start();
    expect(await exists(t.marker)).toBe(false);
    await t.lifecycle.close();
  });
});
