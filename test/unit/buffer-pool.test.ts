import { describe, expect, it } from 'vitest';
import { BufferPool } from '../../agent/util/buffer-pool.js';

const KiB = 1024;
const MiB = 1024 * KiB;

describe('BufferPool', () => {
  it('sizes classes: small ones unpooled, powers of two up to 1 MiB, one class from there to the largest body', () => {
    const pool = new BufferPool(64 * KiB, MiB, 16 * MiB, 64 * MiB);
    expect(pool.classSize(10 * KiB)).toBe(10 * KiB);
    expect(pool.classSize(100 * KiB)).toBe(128 * KiB);
    expect(pool.classSize(MiB)).toBe(MiB);
    expect(pool.classSize(MiB + 1)).toBe(16 * MiB);
    expect(pool.classSize(16 * MiB)).toBe(16 * MiB);
    expect(pool.classSize(17 * MiB)).toBe(32 * MiB);
  });

  it('hands back the same memory for the same class, once, and ignores buffers it did not make', () => {
    const pool = new BufferPool(64 * KiB, MiB, 16 * MiB, 64 * MiB);
    const a = pool.take(3 * MiB);
    expect(a.length).toBe(3 * MiB);
    pool.give(a);
    pool.give(a); // a second give must not list it twice
    const b = pool.take(5 * MiB);
    expect(b.length).toBe(5 * MiB);
    expect(b.buffer).toBe(a.buffer);
    const c = pool.take(2 * MiB);
    expect(c.buffer).not.toBe(a.buffer);
    pool.give(Buffer.alloc(2 * MiB));
    expect(pool.take(2 * MiB).buffer).not.toBe(c.buffer);
  });

  it('keeps at most maxFreeBytes for reuse', () => {
    const pool = new BufferPool(64 * KiB, MiB, 16 * MiB, 16 * MiB);
    const a = pool.take(2 * MiB);
    const b = pool.take(2 * MiB);
    pool.give(a);
    pool.give(b); // over the cap: left to GC
    expect(pool.take(2 * MiB).buffer).toBe(a.buffer);
    expect(pool.take(2 * MiB).buffer).not.toBe(b.buffer);
  });
});
