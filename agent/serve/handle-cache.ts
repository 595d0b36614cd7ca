/**
 * Open descriptors on local shuffle files, shared by the streams that read them and kept open a
 * little while after the last one finished. Reducers fetch many partitions of the same output in
 * bursts; opening and closing the file for each 64 KiB partition costs more CPU than reading it.
 * A committed Spark output never changes under its name, so a cached descriptor serves the same
 * bytes as a fresh one (and keeps serving them if Spark unlinks the file meanwhile).
 */
import { open, type FileHandle } from 'node:fs/promises';

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

  /** Rejects like `open()` (ENOENT when the file is gone). */
  async acquire(path: string): Promise<CachedHandle> {
    if (this.closed) throw new Error('handle cache closed');
    let entry = this.entries.get(path);
    if (!entry) {
      this.evictIdle();
      const opened = open(path, 'r');
      entry = { handle: opened, refs: 0 };
      this.entries.set(path, entry);
      opened.catch(() => this.entries.get(path) === entry && this.entries.delete(path));
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
        if (--e.refs === 0) this.idle(path, e);
      },
    };
  }

  /** Close every descriptor nobody uses; the rest close as they are released. */
  async close(): Promise<void> {
    this.closed = true;
    const idle = [...this.entries].filter(([, e]) => e.refs === 0);
    await Promise.all(idle.map(([path, e]) => this.drop(path, e)));
  }

  private idle(path: string, e: Entry): void {
    if (this.closed || this.entries.size > this.maxOpen) {
      void this.drop(path, e);
      return;
    }
    e.idleTimer = setTimeout(() => void this.drop(path, e), this.idleMs);
    e.idleTimer.unref();
  }

  /** Over the limit: close the idle descriptors (they are reopened on demand). */
  private evictIdle(): void {
    if (this.entries.size < this.maxOpen) return;
    for (const [path, e] of this.entries) if (e.refs === 0) void this.drop(path, e);
  }

  private async drop(path: string, e: Entry): Promise<void> {
    if (e.refs > 0 || this.entries.get(path) !== e) return;
    clearTimeout(e.idleTimer);
    this.entries.delete(path);
    await e.handle.then((h) => h.close()).catch(() => undefined);
  }
}
