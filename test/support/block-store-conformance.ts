/**
 * One suite of BlockStore behaviour, run against every implementation (FileStore, S3Store on
 * s3rver, S3Store on Swift). Each case asserts bytes and sizes read back, not return values alone.
 */
import { open, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BlockStore } from '../../agent/store/block-store.js';
import { NotFoundError, StoreError } from '../../agent/store/block-store.js';
import { randomFile, readAll, tempDir } from './local-files.js';

export interface ConformanceTarget {
  store: BlockStore;
  /** Size of a file that takes the store's multipart path (or just a large one). */
  largeFileSize: number;
  /** False for servers that ignore `If-None-Match: *` (s3rver): racing creators may all win there. */
  atomicCreate?: boolean;
  cleanup(): Promise<void>;
}

export function blockStoreConformance(name: string, open_: () => Promise<ConformanceTarget>): void {
  describe(`BlockStore conformance: ${name}`, () => {
    let target: ConformanceTarget;
    let local: { dir: string; cleanup: () => Promise<void> };
    let store: BlockStore;
    let seq = 0;
    const key = (file: string): string => `app-conf/${seq++}/123/${file}`;

    beforeAll(async () => {
      target = await open_();
      store = target.store;
      local = await tempDir();
    });
    afterAll(async () => {
      await store?.close();
      await target?.cleanup();
      await local?.cleanup();
    });

    it('stores a file and reads it back whole and by range', async () => {
      const { file, bytes } = await randomFile(local.dir, 'a.data', 100_000);
      const k = key('shuffle_0_1_0.data');
      const put = await store.put(k, file);
      expect(put).toMatchObject({ key: k, size: 100_000 });
      expect((await store.stat(k))?.size).toBe(100_000);
      expect(await readAll(await store.read(k))).toEqual(bytes);
      expect(await readAll(await store.read(k, { start: 10, end: 4096 }))).toEqual(bytes.subarray(10, 4096));
      expect(await readAll(await store.read(k, { start: 99_990, end: 100_000 }))).toEqual(bytes.subarray(99_990));
      expect((await readAll(await store.read(k, { start: 5, end: 5 }))).length).toBe(0);
    });

    it('stores an empty file', async () => {
      const { file } = await randomFile(local.dir, 'empty.data', 0);
      const k = key('shuffle_0_2_0.data');
      await store.put(k, file);
      expect((await store.stat(k))?.size).toBe(0);
      expect((await readAll(await store.read(k))).length).toBe(0);
    });

    it('reports absent keys: stat undefined, read NotFoundError', async () => {
      const k = key('shuffle_0_3_0.index');
      expect(await store.stat(k)).toBeUndefined();
      await expect(store.read(k)).rejects.toBeInstanceOf(NotFoundError);
      await expect(store.read(k, { start: 0, end: 8 })).rejects.toBeInstanceOf(NotFoundError);
    });

    it('holds() is true only for a stored copy of the same size', async () => {
      const { file } = await randomFile(local.dir, 'h.data', 3000);
      const k = key('shuffle_0_4_0.data');
      expect(await store.holds(k, file)).toBe(false);
      await store.put(k, file);
      expect(await store.holds(k, file)).toBe(true);
      const { file: bigger } = await randomFile(local.dir, 'h2.data', 3001);
      expect(await store.holds(k, bigger)).toBe(false);
    });

    it('overwrites a key with the new bytes', async () => {
      const k = key('shuffle_0_5_0.data');
      await store.put(k, (await randomFile(local.dir, 'o1.data', 5000)).file);
      const second = await randomFile(local.dir, 'o2.data', 7000);
      await store.put(k, second.file);
      expect(await readAll(await store.read(k))).toEqual(second.bytes);
    });

    it('lists keys under a prefix with sizes, and nothing outside it', async () => {
      const base = `app-list-${seq++}`;
      const { file } = await randomFile(local.dir, 'l.data', 10);
      await store.put(`${base}/0/1/a`, file);
      await store.put(`${base}/0/2/b`, file);
      await store.put(`${base}/1/3/c`, file);
      await store.put(`${base}x/0/1/a`, file);
      const under0: string[] = [];
      for await (const o of store.list(`${base}/0/`)) {
        expect(o.size).toBe(10);
        under0.push(o.key);
      }
      expect(under0.sort()).toEqual([`${base}/0/1/a`, `${base}/0/2/b`]);
      const all: string[] = [];
      for await (const o of store.list(`${base}/`)) all.push(o.key);
      expect(all.sort()).toEqual([`${base}/0/1/a`, `${base}/0/2/b`, `${base}/1/3/c`]);
    });

    it('createIfAbsent creates a small object once and never overwrites one (issue 17: another writer\'s marker)', async () => {
      const k = key('_owner');
      expect(await store.createIfAbsent(k, Buffer.from('first'))).toBe(true);
      expect(await store.createIfAbsent(k, Buffer.from('second'))).toBe(false);
      expect((await readAll(await store.read(k))).toString()).toBe('first');
      // Racing creators of one key: where the store makes creation atomic, exactly one wins and
      // its bytes are what every reader sees.
      const raced = key('_owner');
      const wins = await Promise.all(Array.from({ length: 8 }, (_, i) => store.createIfAbsent(raced, Buffer.from(`writer ${i}`))));
      const stored = (await readAll(await store.read(raced))).toString();
      if (target.atomicCreate ?? true) {
        expect(wins.filter(Boolean)).toHaveLength(1);
        expect(stored).toBe(`writer ${wins.indexOf(true)}`);
      } else {
        expect(wins.filter(Boolean).length).toBeGreaterThanOrEqual(1);
      }
    });

    it('deletes a key; deleting an absent key is not an error', async () => {
      const k = key('shuffle_0_6_0.data');
      await store.put(k, (await randomFile(local.dir, 'd.data', 10)).file);
      await store.delete(k);
      expect(await store.stat(k)).toBeUndefined();
      await store.delete(k);
    });

    it('copies through a held descriptor after the file was unlinked', async () => {
      const { file, bytes } = await randomFile(local.dir, 'gone.data', 50_000);
      const handle = await open(file.path, 'r');
      try {
        await unlink(file.path);
        const k = key('shuffle_0_7_0.data');
        await store.put(k, { ...file, handle });
        expect(await readAll(await store.read(k))).toEqual(bytes);
      } finally {
        await handle.close();
      }
    });

    it('fails with source-gone for a missing local file, and stores nothing', async () => {
      const k = key('shuffle_0_8_0.data');
      const err = await store.put(k, { path: join(local.dir, 'never-written'), size: 10 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreError);
      expect((err as StoreError).kind).toBe('source-gone');
      expect(await store.stat(k)).toBeUndefined();
    });

    it('fails with source-changed when the file is shorter than committed, and stores nothing', async () => {
      const path = join(local.dir, 'short.data');
      await writeFile(path, Buffer.alloc(100, 1));
      const k = key('shuffle_0_9_0.data');
      const err = await store.put(k, { path, size: 200 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(StoreError);
      expect((err as StoreError).kind).toBe('source-changed');
      expect(await store.stat(k)).toBeUndefined();
    });

    it('stores a large file intact (multipart where the store has it)', async () => {
      const { file, bytes } = await randomFile(local.dir, 'large.data', target.largeFileSize);
      const k = key('shuffle_1_1_0.data');
      await store.put(k, file);
      expect((await store.stat(k))?.size).toBe(target.largeFileSize);
      expect(await store.holds(k, file)).toBe(true);
      const whole = await readAll(await store.read(k));
      expect(whole.equals(bytes)).toBe(true);
      // A range across a 5 MiB part boundary.
      const start = 5 * 1024 * 1024 - 100;
      expect((await readAll(await store.read(k, { start, end: start + 300 }))).equals(bytes.subarray(start, start + 300))).toBe(true);
    });
  });
}
