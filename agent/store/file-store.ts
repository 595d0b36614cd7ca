/**
 * The embedded default store: a directory, on a mounted volume or local disk. Objects are copied
 * to a temp file in the target directory, fsynced, then renamed into place, so a crash never
 * leaves a torn object under a final key. The rename itself is made durable by the file system's
 * next journal commit (ext4: within 5 s); the directory is not fsynced per object, which would
 * double the cost of small outputs. After a kernel crash an object is therefore whole or absent.
 */
import { constants } from 'node:fs';
import { access, copyFile, link, mkdir, open, readdir, rename, rm, rmdir, stat, unlink, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { errorCode } from '../util/errors.js';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import type { BlockStore, LocalFile, PutOptions, StoredObject, StoreProbe } from './block-store.js';
import { NotFoundError, StoreError } from './block-store.js';
import { localReadError } from './local-file.js';

/** Temp files carry this marker; a restart sweeps the ones a crash left behind. */
const PARTIAL = '.partial-';

export class FileStore implements BlockStore, StoreProbe {
  readonly url: string;
  private readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
    this.url = pathToFileURL(this.root).href;
  }

  async probe(options: { write: boolean }): Promise<void> {
    if (options.write) {
      await this.makeDir(this.root);
      await access(this.root, constants.W_OK | constants.X_OK).catch((err: unknown) => {
        throw storeWriteError(`write to ${this.root}`, err);
      });
      return;
    }
    const info = await stat(this.root).catch((err: unknown) => {
      throw new StoreError(`file store ${this.root}: ${errorCode(err) === 'ENOENT' ? 'no such directory' : (err as Error).message}`, 'permanent', errorCode(err), { cause: err });
    });
    if (!info.isDirectory()) throw new StoreError(`file store ${this.root} is not a directory`, 'permanent', 'ENOTDIR');
  }

  private pathOf(key: string): string {
    const p = resolve(this.root, key);
    if (!p.startsWith(this.root + sep) || key.includes(PARTIAL)) throw new RangeError(`key ${JSON.stringify(key)} escapes the store`);
    return p;
  }

  async put(key: string, file: LocalFile, options: PutOptions = {}): Promise<StoredObject> {
    const target = this.pathOf(key);
    const dir = dirname(target);
    const temp = join(dir, `.${key.slice(key.lastIndexOf('/') + 1)}${PARTIAL}${randomBytes(6).toString('hex')}`);
    options.signal?.throwIfAborted();
    // A held descriptor is reopened through /proc, which works after the file was unlinked.
    const source = file.handle && process.platform === 'linux' ? `/proc/self/fd/${file.handle.fd}` : file.path;
    try {
      await this.copy(source, temp, dir, file);
      // fsync the copy before it gets its final name: no torn object even after a kernel crash.
      const handle = await open(temp, 'r+');
      let size: number;
      try {
        size = (await handle.stat()).size;
        await handle.datasync();
      } finally {
        await handle.close();
      }
      if (size !== file.size) {
        throw new StoreError(`local file ${file.path} has ${size} bytes, ${file.size} were committed`, 'source-changed', 'ESIZE');
      }
      await rename(temp, target).catch((err: unknown) => {
        throw storeWriteError(`rename to ${target}`, err);
      });
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      throw err instanceof StoreError ? err : storeWriteError(`write ${temp}`, err);
    }
    return { key, size: file.size };
  }

  /**
   * One kernel-side copy (copy_file_range) instead of a read/write stream: on small files the
   * per-call cost dominates. Makes the directory on first use.
   */
  private async copy(source: string, temp: string, dir: string, file: LocalFile): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await copyFile(source, temp, constants.COPYFILE_EXCL);
        return;
      } catch (err) {
        const e = err as NodeJS.ErrnoException & { dest?: string };
        if (e.code === 'ENOENT' && attempt === 0) {
          // Either the source is gone or the target directory does not exist yet.
          const sourceThere = await stat(source).then(
            () => true,
            () => false,
          );
          if (!sourceThere) throw localReadError(file, err);
          await this.makeDir(dir);
          continue;
        }
        if (e.code === 'ENOENT') throw localReadError(file, err);
        throw storeWriteError(`copy to ${temp}`, err);
      }
    }
  }

  /**
   * mkdir -p under the root. Node's recursive mkdir reports ENOENT for a read-only file system;
   * on failure, step down from the root to report the real cause (EROFS, ENOSPC, EACCES...).
   */
  private async makeDir(dir: string): Promise<void> {
    try {
      await mkdir(dir, { recursive: true });
      return;
    } catch (err) {
      let current = this.root;
      for (const part of ['', ...relative(this.root, dir).split(sep)]) {
        current = part === '' ? current : join(current, part);
        try {
          await mkdir(current);
        } catch (stepErr) {
          if (errorCode(stepErr) !== 'EEXIST') throw storeWriteError(`create ${current}`, stepErr);
        }
      }
      throw storeWriteError(`create ${dir}`, err);
    }
  }

  async holds(key: string, file: LocalFile): Promise<boolean> {
    // Objects only ever appear whole (rename), and a committed Spark output never changes under
    // its name, so an object of the committed size is this output.
    const existing = await this.stat(key);
    return existing !== undefined && existing.size === file.size;
  }

  async stat(key: string): Promise<StoredObject | undefined> {
    try {
      const s = await stat(this.pathOf(key));
      return s.isFile() ? { key, size: s.size, modified: s.mtime } : undefined;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async read(key: string, range?: { start: number; end: number }): Promise<Readable> {
    const path = this.pathOf(key);
    const handle = await open(path, 'r').catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(key);
      throw err;
    });
    if (range && range.end <= range.start) {
      await handle.close();
      return Readable.from([]);
    }
    return handle.createReadStream(range ? { start: range.start, end: range.end - 1 } : {});
  }

  async *list(prefix: string): AsyncIterable<StoredObject> {
    const slash = prefix.lastIndexOf('/');
    const baseKey = slash >= 0 ? prefix.slice(0, slash + 1) : '';
    const start = baseKey === '' ? this.root : this.pathOf(baseKey.slice(0, -1));
    for await (const key of walk(start, baseKey)) {
      if (!key.startsWith(prefix)) continue;
      const s = await this.stat(key);
      if (s) yield s;
    }
  }

  /**
   * Removes the object, then its directories up to the root as they become empty: a store of
   * objects has no directories, and gc would otherwise leave an empty tree per app.
   */
  async delete(key: string): Promise<void> {
    const path = this.pathOf(key);
    await rm(path, { force: true });
    for (let dir = dirname(path); dir.startsWith(this.root + sep); dir = dirname(dir)) {
      try {
        await rmdir(dir);
      } catch (err) {
        // Not empty (a sibling, or a writer's new object) or already gone: stop climbing.
        const code = errorCode(err);
        if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'ENOENT') return;
        throw err;
      }
    }
  }

  async createIfAbsent(key: string, body: Buffer): Promise<boolean> {
    const target = this.pathOf(key);
    const dir = dirname(target);
    await this.makeDir(dir);
    const temp = join(dir, `.${key.slice(key.lastIndexOf('/') + 1)}${PARTIAL}${randomBytes(6).toString('hex')}`);
    try {
      await writeFile(temp, body, { flush: true });
      // link(2) fails with EEXIST when the name exists: the object appears whole, and only once.
      await link(temp, target);
      return true;
    } catch (err) {
      if (errorCode(err) === 'EEXIST') return false;
      throw storeWriteError(`create ${target}`, err);
    } finally {
      await unlink(temp).catch(() => undefined);
    }
  }

  /** Remove temp files a crash left behind. Returns how many were removed. */
  async sweepPartials(): Promise<number> {
    let removed = 0;
    const visit = async (dir: string): Promise<void> => {
      const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const e of entries) {
        const p = join(dir, e.name);
        if (e.isDirectory()) await visit(p);
        else if (e.name.includes(PARTIAL)) {
          await unlink(p).catch(() => undefined);
          removed++;
        }
      }
    };
    await visit(this.root);
    return removed;
  }

  async close(): Promise<void> {
    // Nothing held open between calls.
  }
}

async function* walk(dir: string, keyPrefix: string): AsyncIterable<string> {
  const entries = await readdir(dir, { withFileTypes: true }).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    if (e.name.includes(PARTIAL)) continue;
    if (e.isDirectory()) yield* walk(join(dir, e.name), `${keyPrefix}${e.name}/`);
    else if (e.isFile()) yield `${keyPrefix}${e.name}`;
  }
}

/** ENOSPC, EROFS, EACCES... : the store is full or read-only. Retried: an SRE can fix it live. */
function storeWriteError(action: string, err: unknown): StoreError {
  if (err instanceof StoreError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? 'EUNKNOWN';
  const kind = code === 'EACCES' || code === 'EROFS' || code === 'EPERM' ? 'permanent' : 'transient';
  return new StoreError(`file store: ${action} failed: ${code}`, kind, code, { cause: err });
}
