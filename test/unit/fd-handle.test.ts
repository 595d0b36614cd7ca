/** store/fd-handle.ts on real files: reads, and a close that never races the reads in flight. */
import { closeSync, fstatSync, openSync, writeSync } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fdHandle } from '../../agent/store/fd-handle.js';
import { mkfifo } from '../support/hostile-tenant.js';

describe('fdHandle', () => {
  let dir: string;
  let path: string;
  const bytes = Buffer.from(Array.from({ length: 64 * 1024 }, (_, i) => (i * 7) % 251));

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ssa-fd-handle-'));
    path = join(dir, 'f');
    await writeFile(path, bytes);
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads positioned ranges of the file', async () => {
    const h = fdHandle(openSync(path, 'r'));
    const buf = Buffer.alloc(100);
    expect(await h.read(buf, 0, 100, 1000)).toEqual({ bytesRead: 100 });
    expect(buf).toEqual(bytes.subarray(1000, 1100));
    expect((await h.read(buf, 0, 100, bytes.length - 10)).bytesRead).toBe(10);
    await h.close();
  });

  it('closes the descriptor only once the read in flight is done', async () => {
    // A read that waits in a pool thread until data arrives: a FIFO opened for reading and writing.
    const fifo = join(dir, 'fifo');
    mkfifo(fifo);
    const fd = openSync(fifo, 'r+');
    const h = fdHandle(fd);
    const buf = Buffer.alloc(5);
    const read = h.read(buf, 0, 5, -1);
    let closedAt: 'before' | 'after' | undefined;
    let readDone = false;
    void read.then(() => (readDone = true));
    const closed = h.close().then(() => (closedAt = readDone ? 'after' : 'before'));
    // Three thread-pool round trips later, a close that had not waited would have run.
    for (let i = 0; i < 3; i++) await stat(dir);
    expect(closedAt).toBeUndefined();
    expect(() => fstatSync(fd)).not.toThrow();
    const writer = openSync(fifo, 'w');
    writeSync(writer, 'hello');
    closeSync(writer);
    expect((await read).bytesRead).toBe(5);
    expect(buf.toString()).toBe('hello');
    await closed;
    expect(closedAt).toBe('after');
    expect(() => fstatSync(fd)).toThrow(expect.objectContaining({ code: 'EBADF' }));
  });

  it('closes once however often asked, and refuses reads after close', async () => {
    const fd = openSync(path, 'r');
    const h = fdHandle(fd);
    const reads = Array.from({ length: 64 }, (_, i) => {
      const buf = Buffer.alloc(1024);
      return h.read(buf, 0, 1024, i * 1024).then(({ bytesRead }) => ({ bytesRead, same: buf.equals(bytes.subarray(i * 1024, i * 1024 + 1024)) }));
    });
    const closed = h.close();
    expect(h.close()).toBe(closed);
    const results = await Promise.all(reads);
    expect(results.every((r) => r.bytesRead === 1024 && r.same)).toBe(true);
    await closed;
    expect(() => fstatSync(fd)).toThrow(expect.objectContaining({ code: 'EBADF' }));
    await expect(h.read(Buffer.alloc(1), 0, 1, 0)).rejects.toMatchObject({ code: 'EBADF' });
  });
});
