/**
 * Reusable read buffers in power-of-two size classes, for S3Store's buffered uploads (whole small
 * files, multipart parts). A fresh multi-MiB buffer per upload is freed only when V8 next collects,
 * which it does late for memory outside its heap: measured on the large mix, peak RSS rose to
 * 221 MiB with a 64 MiB byte budget. Reused buffers keep RSS at the budget plus what is pooled.
 */
export class BufferPool {
  private readonly free = new Map<number, Buffer[]>();
  /** Backing stores this pool allocated: only those are taken back. */
  private readonly own = new WeakSet<ArrayBufferLike>();
  /** Backing stores in the free lists now: a second `give` of the same buffer must not list it twice. */
  private readonly listed = new WeakSet<ArrayBufferLike>();
  private freeBytes = 0;

  /**
   * @param minClass smallest class; smaller requests get a plain buffer (Node's own pool serves them).
   * @param maxFreeBytes bytes kept for reuse at most; buffers given back beyond that are left to GC.
   */
  constructor(
    readonly minClass: number,
    readonly maxFreeBytes: number,
  ) {}

  /** The bytes a request of `size` occupies (what a byte budget should count). */
  classSize(size: number): number {
    if (size <= this.minClass) return size;
    return 2 ** Math.ceil(Math.log2(size));
  }

  /** A buffer of exactly `size` bytes, uninitialised; hand it back with `give` once nothing reads it. */
  take(size: number): Buffer {
    const cls = this.classSize(size);
    if (cls === size && size <= this.minClass) return Buffer.allocUnsafe(size);
    const reused = this.free.get(cls)?.pop();
    if (reused) {
      this.listed.delete(reused.buffer);
      this.freeBytes -= cls;
      return reused.subarray(0, size);
    }
    const fresh = Buffer.allocUnsafeSlow(cls);
    this.own.add(fresh.buffer);
    return fresh.subarray(0, size);
  }

  /** Return a buffer from `take`; others are ignored. The caller must not touch it afterwards. */
  give(buf: Buffer): void {
    const backing = buf.buffer;
    if (!this.own.has(backing) || this.listed.has(backing) || this.freeBytes + backing.byteLength > this.maxFreeBytes) return;
    this.listed.add(backing);
    const cls = backing.byteLength;
    const list = this.free.get(cls) ?? [];
    list.push(Buffer.from(backing, 0, cls));
    this.free.set(cls, list);
    this.freeBytes += cls;
  }
}
