/**
 * Reusable read buffers for S3Store's buffered uploads (whole files, multipart parts). A fresh
 * multi-MiB buffer per upload is freed only when V8 next collects, which it does late for memory
 * outside its heap: measured on the large mix, peak RSS rose to 221 MiB with a 64 MiB byte budget.
 *
 * Sizes up to `wholeFrom` go in power-of-two classes; everything from there up to `whole` shares
 * one class of `whole` bytes (the largest buffered file or part), so that files of 1–16 MiB reuse
 * the same few buffers instead of filling a free list per class while allocating in another
 * (power-of-two classes for those still left 214 MiB peaks on the classic mix). A budget that
 * counts `classSize` then bounds what is ever allocated.
 */
export class BufferPool {
  private readonly free = new Map<number, Buffer[]>();
  /** Backing stores this pool allocated: only those are taken back. */
  private readonly own = new WeakSet<ArrayBufferLike>();
  /** Backing stores in the free lists now: a second `give` of the same buffer must not list it twice. */
  private readonly listed = new WeakSet<ArrayBufferLike>();
  private freeBytes = 0;

  /**
   * @param minClass smallest class; smaller requests get a plain buffer (cheap, and Node pools the smallest).
   * @param wholeFrom sizes above this (and up to `whole`) share the class `whole`.
   * @param maxFreeBytes bytes kept for reuse at most; buffers given back beyond that are left to GC.
   */
  constructor(
    readonly minClass: number,
    readonly wholeFrom: number,
    readonly whole: number,
    readonly maxFreeBytes: number,
  ) {}

  /** The bytes a request of `size` occupies (what a byte budget should count). */
  classSize(size: number): number {
    if (size <= this.minClass) return size;
    if (size > this.wholeFrom && size <= this.whole) return this.whole;
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
