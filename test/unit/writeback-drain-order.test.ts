import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StoreError, type LocalFile, type PutOptions, type StoredObject } from '../../agent/store/block-store.js';
import { WritebackQueue, type WritebackStore } from '../../agent/writeback/writeback-queue.js';
import type { MapOutput } from '../../agent/watch/map-output.js';

/** The queue opens every file before a store sees it (never a path): real, if empty, files. */
const dir = mkdtempSync(join(tmpdir(), 'ssa-drain-order-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A store whose PUTs wait until the test releases them, in order; it never reads the file. */
class GatedStore implements WritebackStore {
  readonly puts: string[] = [];
  private readonly waiting: Array<{ key: string; resolve: () => void; reject: (e: unknown) => void }> = [];
  private arrived?: () => void;

  put(key: string, file: LocalFile, options?: PutOptions): Promise<StoredObject> {
    this.puts.push(key);
    return new Promise((resolve, reject) => {
      this.waiting.push({ key, resolve: () => resolve({ key, size: file.size }), reject });
      options?.signal?.addEventListener('abort', () => reject(new Error('aborted')), { once: true });
      this.arrived?.();
    });
  }
  /** Keys the store took although the writer never got the answer. */
  readonly landed = new Set<string>();
  holds(key: string): Promise<boolean> {
    return Promise.resolve(this.landed.has(key));
  }
  /** Resolves once a PUT is waiting. */
  async next(): Promise<string> {
    while (this.waiting.length === 0) await new Promise<void>((r) => (this.arrived = r));
    return (this.waiting[0] as { key: string }).key;
  }
  async release(fail = false): Promise<string> {
    await this.next();
    const w = this.waiting.shift() as (typeof this.waiting)[number];
    if (fail) w.reject(new StoreError('503', 'transient', 'SlowDown'));
    else w.resolve();
    return w.key;
  }
}

const output = (mapId: number, dataLength: number, shuffleId = 0): MapOutput => {
  const indexPath = join(dir, `shuffle_${shuffleId}_${mapId}_0.index`);
  const dataPath = join(dir, `shuffle_${shuffleId}_${mapId}_0.data`);
  writeFileSync(indexPath, '');
  writeFileSync(dataPath, '');
  return {
    id: `app/${shuffleId}/${mapId}`,
    appId: 'app',
    shuffleId,
    mapId: String(mapId),
    blockManagerDir: dir,
    indexPath,
    indexLength: 24,
    dataPath,
    dataLength,
    offsets: [0, dataLength],
    committedAt: 0,
    foundAtStart: false,
  };
};

const name = (key: string): string => key.slice(key.lastIndexOf('/') + 1);

describe('write-back orders used by a drain', () => {
  it('smallest-first writes the fewest bytes left first; FIFO as committed', async () => {
    for (const [order, expected] of [
      ['smallest-first', ['shuffle_0_2_0.data', 'shuffle_0_3_0.data', 'shuffle_0_1_0.data']],
      ['fifo', ['shuffle_0_1_0.data', 'shuffle_0_2_0.data', 'shuffle_0_3_0.data']],
    ] as const) {
      const store = new GatedStore();
      const queue = new WritebackQueue({ store, concurrency: 1, maxHeldOutputs: 0, order });
      queue.add(output(0, 10)); // occupies the only slot
      queue.add(output(1, 500));
      queue.add(output(2, 5));
      queue.add(output(3, 50));
      const written: string[] = [];
      for (let i = 0; i < 8; i++) written.push(name(await store.release()));
      expect(written.filter((k) => k.endsWith('.data')).slice(1)).toEqual(expected);
      await queue.whenIdle();
      await queue.close();
    }
  });

  it('index-first (and smallest-first) finish an output whose data is stored before starting others', async () => {
    for (const order of ['index-first', 'smallest-first'] as const) {
      const store = new GatedStore();
      const queue = new WritebackQueue({ store, concurrency: 1, maxHeldOutputs: 0, order: 'fifo', retry: { baseMs: 60_000, maxMs: 60_000 } });
      queue.add(output(1, 1000));
      expect(name(await store.release())).toBe('shuffle_0_1_0.data');
      expect(name(await store.release(true))).toBe('shuffle_0_1_0.index'); // fails: retried later
      queue.add(output(2, 10));
      queue.add(output(3, 10));
      expect(name(await store.next())).toBe('shuffle_0_2_0.data'); // started while 1 waits to retry
      queue.setOrder(order);
      queue.retryNow();
      const written: string[] = [];
      for (let i = 0; i < 5; i++) written.push(name(await store.release()));
      // Output 2 had already started (FIFO) when the retry came; output 1's index is next.
      expect(written.slice(0, 3)).toEqual(['shuffle_0_2_0.data', 'shuffle_0_2_0.index', 'shuffle_0_1_0.index']);
      await queue.whenIdle();
      await queue.close();
    }
  });

  it('close aborts writes under way and leaves their outputs pending, for the exit accounting', async () => {
    const store = new GatedStore();
    const queue = new WritebackQueue({ store, concurrency: 1, maxHeldOutputs: 0 });
    queue.add(output(1, 10));
    queue.add(output(2, 10));
    queue.add(output(3, 10));
    await store.release();
    await store.release(); // output 1 stored
    await store.next();
    await queue.close();
    expect(queue.pending().map((o) => o.id).sort()).toEqual(['app/0/2', 'app/0/3']);
    expect(queue.status().failedFiles).toBe(0); // an abort is not a store failure
  });

  it('close counts a write whose answer was lost but which the store took (exact accounting)', async () => {
    const store = new GatedStore();
    const queue = new WritebackQueue({ store, concurrency: 1, maxHeldOutputs: 0 });
    queue.add(output(1, 10));
    queue.add(output(2, 10));
    await store.release(); // data of 1
    const indexKey = await store.next(); // index of 1 under way...
    store.landed.add(indexKey); // ...and the store has it, but the answer never comes
    await queue.close();
    expect(queue.pending().map((o) => o.id)).toEqual(['app/0/2']);
    expect(queue.status().persistedOutputs).toBe(1);
  });
});
