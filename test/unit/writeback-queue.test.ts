import { afterEach, describe, expect, it } from 'vitest';
import { buffer } from 'node:stream/consumers';
import { Readable } from 'node:stream';
import { rm } from 'node:fs/promises';
import type { BlockStore, LocalFile, StoredObject } from '../../agent/store/block-store.js';
import { NotFoundError, StoreError } from '../../agent/store/block-store.js';
import { readLocal } from '../../agent/store/local-file.js';
import { WritebackQueue } from '../../agent/writeback/writeback-queue.js';
import type { MapOutput } from '../../agent/watch/map-output.js';
import { SparkLikeExecutor } from '../kit/spark-writer.js';
import { tempDir } from '../kit/temp-dir.js';
import { until, waitFor } from '../kit/wait.js';
import { fallbackKey } from '../../agent/spark/fallback-key.js';

/** An in-memory store that reads the local file for real and can be told to fail or wait. */
class MemoryStore implements BlockStore {
  readonly url = 'memory://';
  readonly objects = new Map<string, Buffer>();
  readonly puts: string[] = [];
  failures: Array<StoreError | Error> = [];
  gate?: Promise<void>;

  async put(key: string, file: LocalFile): Promise<StoredObject> {
    this.puts.push(key);
    await this.gate;
    const failure = this.failures.shift();
    if (failure) throw failure;
    const bytes = await buffer(readLocal(file)).catch((err: unknown) => {
      throw new StoreError(`read ${file.path}`, (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'source-gone' : 'transient', 'E', { cause: err });
    });
    this.objects.set(key, bytes);
    return { key, size: bytes.length };
  }
  async holds(key: string, file: LocalFile): Promise<boolean> {
    return this.objects.get(key)?.length === file.size;
  }
  async stat(key: string): Promise<StoredObject | undefined> {
    const o = this.objects.get(key);
    return o && { key, size: o.length };
  }
  async read(key: string): Promise<Readable> {
    const o = this.objects.get(key);
    if (!o) throw new NotFoundError(key);
    return Readable.from([o]);
  }
  async *list(): AsyncIterable<StoredObject> {}
  async delete(key: string): Promise<void> {
    this.objects.delete(key);
  }
  async createIfAbsent(key: string, body: Buffer): Promise<boolean> {
    if (this.objects.has(key)) return false;
    this.objects.set(key, body);
    return true;
  }
  async close(): Promise<void> {}
}

function outputOf(files: Awaited<ReturnType<SparkLikeExecutor['commit']>>, extra: Partial<MapOutput> = {}): MapOutput {
  return {
    id: `app/${files.shuffleId}/${files.mapId}`,
    appId: 'app',
    shuffleId: files.shuffleId,
    mapId: files.mapId,
    blockManagerDir: '',
    indexPath: files.indexPath,
    indexLength: files.offsets.length * 8,
    ...(files.dataPath ? { dataPath: files.dataPath } : {}),
    dataLength: files.data.length,
    offsets: files.offsets,
    committedAt: Date.now(),
    foundAtStart: false,
    ...extra,
  };
}

describe('WritebackQueue', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
  });

  async function executor(): Promise<SparkLikeExecutor> {
    const t = await tempDir('ssa-wb-');
    cleanups.push(t.cleanup);
    return new SparkLikeExecutor([t.path]);
  }

  it('pipelines outputs: the next output\'s data goes out while an index is in flight, never an index before its data', async () => {
    const exec = await executor();
    // Index PUTs wait until released; `started` records every PUT as it begins.
    const started: string[] = [];
    let release: () => void = () => undefined;
    const released = new Promise<void>((r) => (release = r));
    const store = new (class extends MemoryStore {
      override async put(key: string, file: LocalFile): Promise<StoredObject> {
        started.push(key.split('/').pop() as string);
        if (key.endsWith('.index')) await released;
        return super.put(key, file);
      }
    })();
    const q = new WritebackQueue({ store, concurrency: 1 });
    // Released first on failure, so that close() does not wait on a held PUT.
    cleanups.push(async () => release(), () => q.close());
    const a = await exec.commit({ shuffleId: 0, mapId: 1, partitions: [10] });
    const b = await exec.commit({ shuffleId: 0, mapId: 2, partitions: [10] });
    q.add(outputOf(a));
    q.add(outputOf(b));
    // With one slot, b's data (and then its index) starts while a's index is still held.
    await until(async () => started.length === 4, 'b under way while a index is held');
    expect(q.status()).toMatchObject({ uploadingOutputs: 2, persistedOutputs: 0 });
    release();
    await q.whenIdle();
    expect(started).toEqual(['shuffle_0_1_0.data', 'shuffle_0_1_0.index', 'shuffle_0_2_0.data', 'shuffle_0_2_0.index']);
    expect(q.status()).toMatchObject({ persistedOutputs: 2, failedFiles: 0 });
  });

  it('writes data before index, under Spark keys, and accounts for it', async () => {
    const exec = await executor();
    const store = new MemoryStore();
    const q = new WritebackQueue({ store, concurrency: 1 });
    cleanups.push(() => q.close());
    const a = await exec.commit({ shuffleId: 0, mapId: 7, partitions: [10, 20] });
    const empty = await exec.commit({ shuffleId: 0, mapId: 8, partitions: [0, 0] });
    q.add(outputOf(a));
    q.add(outputOf(empty));
    expect(q.status()).toMatchObject({ pendingOutputs: 2, pendingFiles: 3, pendingBytes: 30 + 24 + 24 });
    await q.whenIdle();
    expect(store.puts).toEqual(['app/0/103417883/shuffle_0_7_0.data', 'app/0/1094002679/shuffle_0_7_0.index', expect.stringMatching(/^app\/0\/\d+\/shuffle_0_8_0\.index$/)]);
    expect(store.objects.get('app/0/103417883/shuffle_0_7_0.data')).toEqual(a.data);
    expect(q.status()).toMatchObject({ pendingOutputs: 0, pendingFiles: 0, persistedOutputs: 2, persistedFiles: 3, persistedBytes: 30 + 24 + 24, failedFiles: 0 });
    // A newer commit of a stored output is pending from the moment it is added (no idle window).
    q.add({ ...outputOf(a), committedAt: Date.now() + 1 });
    expect(q.isIdle()).toBe(false);
    expect(q.pending().map((o) => o.id)).toEqual(['app/0/7']);
    await q.whenIdle();
    expect(q.status()).toMatchObject({ pendingOutputs: 0, persistedOutputs: 3 });
  });

  it('retries transient and permanent failures, reports them meanwhile, never drops them', async () => {
    const exec = await executor();
    const store = new MemoryStore();
    const errors: string[] = [];
    const q = new WritebackQueue({
      store,
      retry: { baseMs: 1, maxMs: 5 },
      metrics: { filePersisted: () => {}, outputPersisted: () => {}, writeError: (k) => errors.push(k), dropped: () => {}, skippedAlreadyStored: () => {} },
    });
    cleanups.push(() => q.close());
    store.failures = [new StoreError('503 SlowDown', 'transient', 'SlowDown'), new StoreError('403', 'permanent', 'AccessDenied'), new Error('socket hang up')];
    let release!: () => void;
    store.gate = new Promise((r) => (release = r));
    const files = await exec.commit({ shuffleId: 1, mapId: 1, partitions: [5] });
    q.add(outputOf(files));
    release();
    await waitFor(q, 'change', () => q.status().failedFiles === 1);
    expect(q.status().failed[0]).toMatchObject({ id: 'app/1/1', file: 'shuffle_1_1_0.data', kind: 'transient', code: 'SlowDown' });
    await q.whenIdle();
    expect(errors).toEqual(['transient', 'permanent', 'transient']);
    expect(q.status()).toMatchObject({ persistedOutputs: 1, failedFiles: 0, droppedOutputs: 0 });
    expect(store.objects.size).toBe(2);
  });

  it('keeps an output whose executor directory vanished and writes it from held descriptors', async () => {
    const exec = await executor();
    const store = new MemoryStore();
    let release!: () => void;
    store.gate = new Promise((r) => (release = r));
    const q = new WritebackQueue({ store, concurrency: 1 });
    cleanups.push(() => q.close());
    const first = await exec.commit({ shuffleId: 2, mapId: 1, partitions: [100] });
    const second = await exec.commit({ shuffleId: 2, mapId: 2, partitions: [200, 3] });
    q.add(outputOf(first));
    q.add(outputOf(second));
    // Once the queue holds the files open, the executor stops and Spark deletes everything.
    await until(async () => q.get('app/2/1')?.handles && q.get('app/2/2')?.handles, 'descriptors held');
    await exec.stop();
    q.removed({ output: outputOf(second), blockManagerDirGone: true });
    release();
    await q.whenIdle();
    expect(store.objects.get(fallbackKey('app', 2, 'shuffle_2_2_0.data'))).toEqual(second.data);
    expect(store.objects.get(fallbackKey('app', 2, 'shuffle_2_1_0.data'))).toEqual(first.data);
    expect(q.status()).toMatchObject({ persistedOutputs: 2, droppedOutputs: 0 });
  });

  it('forgets a stored output forgetGoneAfterMs after its executor directory went, and nothing else', async () => {
    const exec = await executor();
    const store = new MemoryStore();
    let clock = 0;
    const q = new WritebackQueue({ store, concurrency: 2, now: () => clock, forgetGoneAfterMs: 60_000 });
    cleanups.push(() => q.close());
    const outs = await Promise.all([1, 2, 3, 4].map(async (m) => outputOf(await exec.commit({ shuffleId: 5, mapId: m, partitions: [10, 20] }))));
    const [a, b, c, back] = outs as [MapOutput, MapOutput, MapOutput, MapOutput];
    for (const o of outs) q.add(o);
    await q.whenIdle();
    // d is still being written when its executor goes: it is remembered from when it is stored.
    let release!: () => void;
    store.gate = new Promise((r) => (release = r));
    const d = outputOf(await exec.commit({ shuffleId: 5, mapId: 9, partitions: [30] }));
    q.add(d);
    await until(async () => store.puts.length === 9, 'd being written');
    clock = 1_000;
    q.removed({ output: a, blockManagerDirGone: true });
    q.removed({ output: back, blockManagerDirGone: true });
    q.removed({ output: d, blockManagerDirGone: true });
    clock = 31_000;
    q.removed({ output: b, blockManagerDirGone: true });
    release();
    await q.whenIdle();
    // `back` is committed again (same id) before it is due: it is local again and stays.
    clock = 40_000;
    q.add(back);
    await q.whenIdle();
    clock = 61_000;
    q.forgetGone();
    expect(q.get(a.id)).toBeUndefined();
    expect([b, c, back, d].map((o) => q.get(o.id)?.phase)).toEqual(['persisted', 'persisted', 'persisted', 'persisted']);
    clock = 91_000;
    q.forgetGone();
    expect(q.get(b.id)).toBeUndefined();
    expect(q.get(d.id)).toBeUndefined();
    expect(q.list('app').map((v) => v.output.id).sort()).toEqual([c.id, back.id].sort());
    // Forgetting changes no count: five outputs were stored once (back twice), none dropped.
    expect(q.status()).toMatchObject({ persistedOutputs: 6, pendingOutputs: 0, droppedOutputs: 0 });
  });

  it('forgets gone outputs by its own timer', async () => {
    const exec = await executor();
    const store = new MemoryStore();
    const q = new WritebackQueue({ store, forgetGoneAfterMs: 1 });
    cleanups.push(() => q.close());
    const o = outputOf(await exec.commit({ shuffleId: 6, mapId: 1, partitions: [10] }));
    q.add(o);
    await q.whenIdle();
    q.removed({ output: o, blockManagerDirGone: true });
    expect(q.get(o.id)?.local).toBe(false);
    await until(async () => q.get(o.id) === undefined, 'forgotten');
  });

  it('reports an output as held only once its descriptors are open, and opens them once', async () => {
    const exec = await executor();
    const store = new MemoryStore();
    let release!: () => void;
    store.gate = new Promise((r) => (release = r));
    // Every write fails until the test says: retries re-enqueue the output again and again.
    store.failures = Array.from({ length: 10_000 }, () => new StoreError('down', 'transient', 'EDOWN'));
    const q = new WritebackQueue({ store, concurrency: 1, retry: { baseMs: 1, maxMs: 2 } });
    cleanups.push(() => q.close());
    const files = await exec.commit({ shuffleId: 2, mapId: 9, partitions: [100] });
    q.add(outputOf(files));
    // The open has only been asked for: nothing is held yet, whatever a status reader hopes.
    expect(q.status().heldOutputs).toBe(0);
    await until(async () => q.get('app/2/9')?.handles, 'descriptors held');
    expect(q.status().heldOutputs).toBe(1);
    release();
    await until(async () => store.puts.length >= 6, 'several failed attempts');
    // Many enqueues, one pair of descriptors (a second open would have counted twice).
    expect(q.status().heldOutputs).toBe(1);
    store.failures = [];
    await q.whenIdle();
    expect(q.status()).toMatchObject({ persistedOutputs: 1, heldOutputs: 0 });
  });

  it('drops pending work for a shuffle Spark cleaned up, and outputs that vanished unheld', async () => {
    const exec = await executor();
    const store = new MemoryStore();
    let release!: () => void;
    store.gate = new Promise((r) => (release = r));
    const dropped: string[] = [];
    const q = new WritebackQueue({
      store,
      concurrency: 1,
      maxHeldOutputs: 0,
      metrics: { filePersisted: () => {}, outputPersisted: () => {}, writeError: () => {}, dropped: (r) => dropped.push(r), skippedAlreadyStored: () => {} },
    });
    cleanups.push(() => q.close());
    const busy = await exec.commit({ shuffleId: 3, mapId: 1, partitions: [10] });
    const cleaned = await exec.commit({ shuffleId: 3, mapId: 2, partitions: [10] });
    const vanished = await exec.commit({ shuffleId: 3, mapId: 3, partitions: [10] });
    q.add(outputOf(busy));
    q.add(outputOf(cleaned));
    q.add(outputOf(vanished));
    await exec.remove(3, 2);
    q.removed({ output: outputOf(cleaned), blockManagerDirGone: false });
    await rm(vanished.dataPath as string);
    release();
    await q.whenIdle();
    expect(dropped.sort()).toEqual(['cleaned-up', 'source-gone']);
    expect(q.status()).toMatchObject({ persistedOutputs: 1, droppedOutputs: 2, pendingOutputs: 0 });
    expect([...store.objects.keys()].some((k) => k.includes('shuffle_3_2_0'))).toBe(false);
  });

  it('does not send again what a restart finds stored intact', async () => {
    const exec = await executor();
    const store = new MemoryStore();
    const q1 = new WritebackQueue({ store });
    const files = await exec.commit({ shuffleId: 4, mapId: 1, partitions: [10, 10] });
    q1.add(outputOf(files));
    await q1.whenIdle();
    await q1.close();
    store.puts.length = 0;
    let skipped = 0;
    const q2 = new WritebackQueue({
      store,
      metrics: { filePersisted: () => {}, outputPersisted: () => {}, writeError: () => {}, dropped: () => {}, skippedAlreadyStored: (n) => (skipped += n) },
    });
    cleanups.push(() => q2.close());
    q2.add(outputOf(files, { foundAtStart: true }));
    // A half-done one: only its data made it before the crash.
    const half = await exec.commit({ shuffleId: 4, mapId: 2, partitions: [7] });
    store.objects.set(store.puts[0] ?? 'app/4/x', Buffer.alloc(0));
    q2.add(outputOf(half, { foundAtStart: true }));
    await q2.whenIdle();
    expect(skipped).toBe(2);
    expect(store.puts.filter((k) => k.includes('shuffle_4_1_0'))).toEqual([]);
    expect(store.puts.filter((k) => k.includes('shuffle_4_2_0'))).toHaveLength(2);
  });

  it('orders the backlog smallest first when asked', async () => {
    const exec = await executor();
    const store = new MemoryStore();
    let release!: () => void;
    store.gate = new Promise((r) => (release = r));
    const q = new WritebackQueue({ store, concurrency: 1 });
    cleanups.push(() => q.close());
    for (const [m, size] of [[1, 50], [2, 500], [3, 5], [4, 50]] as const) q.add(outputOf(await exec.commit({ shuffleId: 5, mapId: m, partitions: [size] })));
    q.setOrder('smallest-first');
    release();
    await q.whenIdle();
    const order = store.puts.filter((k) => k.endsWith('.data')).map((k) => k.match(/shuffle_5_(\d)_0/)?.[1]);
    // The first was already being written; the rest follow by size, ties by arrival.
    expect(order).toEqual(['1', '3', '4', '2']);
  });
});
