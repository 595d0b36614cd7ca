/** util/safe-file.ts on real files: what it opens, and what it refuses (and why). */
import { link, lstat, mkdir, mkdtemp, rename, rm, symlink, truncate, unlink, writeFile } from 'node:fs/promises';
import { closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { identityOf, openChecked, openCheckedSync, UnsafeFileError } from '../../agent/util/safe-file.js';
import { mkfifo } from '../support/hostile-tenant.js';

describe('openChecked / openCheckedSync', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ssa-safe-file-'));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** The reason either variant refuses `path` with (they must agree), or 'ok'. */
  async function verdict(path: string, limits: Parameters<typeof openChecked>[1] = {}): Promise<string> {
    let sync: string;
    try {
      closeSync(openCheckedSync(path, limits).fd);
      sync = 'ok';
    } catch (err) {
      sync = err instanceof UnsafeFileError ? err.reason : String(err);
    }
    let async: string;
    try {
      await (await openChecked(path, limits)).handle.close();
      async = 'ok';
    } catch (err) {
      async = err instanceof UnsafeFileError ? err.reason : String(err);
    }
    expect(async, `${path}: async and sync agree`).toBe(sync);
    return sync;
  }

  it('opens a regular file with one link, and a file Spark unlinked after the open still reads', async () => {
    const p = join(dir, 'shuffle_0_0_0.data');
    await writeFile(p, 'bytes');
    expect(await verdict(p)).toBe('ok');
    const { handle } = await openChecked(p, { expected: identityOf(await lstat(p)) });
    await unlink(p);
    const buf = Buffer.alloc(5);
    await handle.read(buf, 0, 5, 0);
    await handle.close();
    expect(buf.toString()).toBe('bytes');
  });

  it('refuses links, FIFOs, directories, devices, hard links, files over the limit and other inodes', async () => {
    const secret = join(dir, 'secret');
    await writeFile(secret, 'secret');
    const cases: Array<[string, (p: string) => Promise<unknown>, string]> = [
      ['symlink', (p) => symlink(secret, p), 'symlink'],
      ['devzero', (p) => symlink('/dev/zero', p), 'symlink'],
      ['fifo', async (p) => mkfifo(p), 'not-regular-file'],
      ['dir', (p) => mkdir(p), 'not-regular-file'],
      ['hardlink', (p) => link(secret, p), 'hard-link'],
    ];
    for (const [name, make, reason] of cases) {
      const p = join(dir, name);
      await make(p);
      expect(await verdict(p), name).toBe(reason);
    }
    const big = join(dir, 'sparse');
    await writeFile(big, '');
    await truncate(big, 400 * 1024 * 1024);
    expect(await verdict(big, { maxSize: 1024 })).toBe('too-large');
    const other = join(dir, 'other');
    await writeFile(other, 'x');
    const expected = identityOf(await lstat(other));
    await rename(join(dir, 'sparse'), other); // another inode under the checked name
    expect(await verdict(other, { expected })).toBe('replaced');
  });

  it('refuses a file reached through a symlinked directory (the kernel names the real path)', async () => {
    const real = join(dir, 'other-app', '0c');
    await mkdir(real, { recursive: true });
    await writeFile(join(real, 'shuffle_0_1_0.data'), 'other app');
    await mkdir(join(dir, 'tenant'));
    await symlink(real, join(dir, 'tenant', '0c'));
    expect(await verdict(join(dir, 'tenant', '0c', 'shuffle_0_1_0.data'))).toBe('symlink');
    expect(await verdict(join(real, 'shuffle_0_1_0.data'))).toBe('ok');
  });
});
