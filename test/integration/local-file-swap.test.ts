/**
 * What the watcher checked is what gets copied and served: a tenant that swaps a committed
 * file for a symlink (to a secret), a FIFO or a directory afterwards gets nothing stored or
 * served, and the output is reported and dropped (not retried), so a drain does not wait for it.
 * Real files and a real FileStore; the queue holds no descriptors (`maxHeldOutputs: 0`), so every
 * write opens by path, as it does beyond `--max-held-outputs`.
 */
import { lstat, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileStore } from '../../agent/store/file-store.js';
import { WritebackQueue } from '../../agent/writeback/writeback-queue.js';
import { resolveFileRange } from '../../agent/serve/block-source.js';
import { HandleCache } from '../../agent/serve/handle-cache.js';
import type { MapOutput } from '../../agent/watch/map-output.js';
import { identityOf } from '../../agent/util/safe-file.js';
import { fallbackKey } from '../../agent/spark/fallback-key.js';
import { shuffleFileName } from '../../agent/spark/file-names.js';
import { tempDir } from '../kit/temp-dir.js';
import { writeMapOutput } from '../support/local-files.js';
import { mkfifo } from '../support/hostile-tenant.js';

/** Rejects after `ms` (a bound on waiting for an event, not a sleep). */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms)))]).finally(() => clearTimeout(timer));
}

describe('local files swapped after the watcher checked them', () => {
  let path: string;
  let cleanup: () => Promise<void>;
  let store: FileStore;
  let queue: WritebackQueue | undefined;
  const secret = Buffer.alloc(300, 's');

  beforeEach(async () => {
    ({ path, cleanup } = await tempDir('ssa-swap-'));
    store = new FileStore(join(path, 'store'));
    await writeFile(join(path, 'secret'), secret);
  });

  afterEach(async () => {
    await queue?.close();
    queue = undefined;
    await cleanup();
  });

  /** A committed output of 300 data bytes, as the watcher reports it (with the inodes it checked). */
  async function committed(mapId: string): Promise<MapOutput> {
    const { output } = await writeMapOutput(join(path, 'local', 'blockmgr-1'), 'app', 0, mapId, [100, 200]);
    return { ...output, indexFile: identityOf(await lstat(output.indexPath)), dataFile: identityOf(await lstat(output.dataPath as string)) };
  }

  const dataKey = (o: MapOutput): string => join(path, 'store', fallbackKey('app', o.shuffleId, shuffleFileName(o.shuffleId, o.mapId, 'data')));

  for (const [what, swap] of [
    ['a symlink to a secret', (p: string) => symlink(join(path, 'secret'), p)],
    ['a directory', (p: string) => mkdir(p).then(() => undefined)],
    ['a FIFO', (p: string) => mkfifo(p)],
  ] as const) {
    it(`write-back refuses a data file swapped for ${what}: reported, dropped, nothing stored, the queue goes idle`, async () => {
      const output = await committed('1');
      await rm(output.dataPath as string, { recursive: true });
      await swap(output.dataPath as string);
      queue = new WritebackQueue({ store, maxHeldOutputs: 0, retry: { baseMs: 10, maxMs: 10 } });
      queue.add(output);
      await within(queue.whenIdle(), 10_000, 'the queue to go idle');
      const status = queue.status();
      expect(status.pendingOutputs).toBe(0);
      expect(status.persistedOutputs).toBe(0);
      expect(status.rejectedOutputs).toBe(1);
      expect(status.rejected[0]).toMatchObject({ id: output.id, kind: 'bad-input' });
      await expect(lstat(dataKey(output))).rejects.toMatchObject({ code: 'ENOENT' });
    });
  }

  it('serving does not follow a data file swapped for a symlink: the path source refuses, the store serves', async () => {
    const output = await committed('2');
    queue = new WritebackQueue({ store, maxHeldOutputs: 0 });
    queue.add(output);
    await within(queue.whenIdle(), 10_000, 'the output to be stored');
    expect(queue.status().persistedOutputs).toBe(1);
    await rm(output.dataPath as string);
    await symlink(join(path, 'secret'), output.dataPath as string);

    const view = { output, phase: 'persisted' as const, local: true };
    const handles = new HandleCache();
    try {
      for (const cache of [handles, undefined]) {
        const deps = { lookup: { get: () => view, list: () => [view] }, store, layout: 'spark-3.3' as const, ...(cache ? { handles: cache } : {}) };
        const range = await resolveFileRange(deps, { appId: 'app', shuffleId: 0, mapId: '2' }, 'data', 0, 0);
        const [local, fromStore] = range.sources;
        expect(local?.kind).toBe('local');
        await expect((local as NonNullable<typeof local>).open(0, 300)).rejects.toMatchObject({ code: 'EUNSAFE' });
        const reader = await (fromStore as NonNullable<typeof fromStore>).open(0, 300);
        const got = await reader.next(300);
        await reader.close();
        expect(got?.equals(secret)).toBe(false);
        expect(got?.length).toBe(300);
      }
    } finally {
      await handles.close();
    }
  });
});
