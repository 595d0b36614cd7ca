/**
 * Open descriptors on local shuffle files, shared by the streams that read them and kept open a
 * little while after the last one finished. Reducers fetch many partitions of the same output in
 * bursts; opening and closing the file for each 64 KiB partition costs more CPU than reading it.
 * A committed Spark output never changes under its name, so a cached descriptor serves the same
 * bytes as a fresh one (and keeps serving them if Spark unlinks the file meanwhile).
 */
import type { FileHandle } from 'node:fs/promises';
import { openChecked, type FileIdentity } from '../util/safe-file.js';

interface Entry {
  handle: Promise<FileHandle>;
  refs: number;
  idleTimer?: NodeJS.Timeout;
}

export interface CachedHandle {
  handle: FileHandle;
  /** Done with it; the cache decides when to close. Idempotent. */
  release(): void;
}

export class HandleCache {
  private readonly entries = new Map<string, Entry>();
  private closed = false;

  constructor(
    private readonly maxOpen = 256,
    private readonly idleMs = 2000,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /**
   * Rejects like `open()` (ENOENT when the file is gone), or with UnsafeFileError for a file
   * that is not the regular, unlinked-to, symlink-free file `expected` names (util/safe-file.ts):
   * the path is a tenant's, the inode the one the watcher checked.
   */
  async acquire(path: string, expected?: FileIdentity): Promise<CachedHandle> {
    if (this.closed) throw new Error('handle cache closed');
    // Keyed by inode too: a later attempt's file under the same name is another entry.
    const key = expected ? `${path}\0${expected.dev}:${expected.ino}` : path;
    let entry = this.entries.get(key);
    if (!entry) {
      this.evictIdle();
      const opened = openChecked(path, expected ? { expected } : {}).then((o) => o.handle);
      entry = { handle: opened, refs: 0 };
      this.entries.set(key, entry);
      opened.catch(() => this.entries.get(key) === entry && this.entries.delete(key));
    }
    clearTimeout(entry.idleTimer);
    entry.idleTimer = undefined;
    entry.refs++;
    const e = entry;
    let handle: FileHandle;
    try {
      handle = await e.handle;
    } catch (err) {
      e.refs--;
      throw err;
    }
    let released = false;
    return {
      handle,
      release: () => {
        if (released) return;
        released = true;
        if (--e.refs === 0) this.idle(key, e);
      },
    };
  }

  /** Close every descriptor nobody uses; the rest close as they are released. */
  async close(): Promise<void> {
    this.closed = true;
    const idle = [...this.entries].filter(([, e]) => e.refs === 0);
    await Promise.all(idle.map(([key, e]) => this.drop(key, e)));
  }

  private idle(key: string, e: Entry): void {
    if (this.closed || this.entries.size > this.maxOpen) {
      void this.drop(key, e);
      return;
    }
    e.idleTimer = setTimeout(() => void this.drop(key, e), this.idleMs);
    e.idleTimer.unref();
  }

  /** Over the limit: close the idle descriptors (they are reopened on demand). */
  private evictIdle(): void {
    if (this.entries.size < this.maxOpen) return;
    for (const [key, e] of this.entries) if (e.refs === 0) void this.drop(key, e);
  }

  private async drop(key: string, e: Entry): Promise<void> {
    if (e.refs > 0 || this.entries.get(key) !== e) return;
    clearTimeout(e.idleTimer);
    this.entries.delete(key);
    await e.handle.then((h) => h.close()).catch(() => undefined);
  }
}
