import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../agent/util/token-bucket.js';
import { ByteBudget } from '../../agent/util/byte-budget.js';

describe('TokenBucket', () => {
  it('lets a burst through at once, then paces to the rate', async () => {
    let now = 0;
    const bucket = new TokenBucket(1000, 0.5, () => now);
    // 500 bytes of burst: the first take goes at once and leaves the bucket in debt.
    await bucket.take(600);
    let released = false;
    const second = bucket.take(100).then(() => (released = true));
    await Promise.resolve();
    expect(released).toBe(false);
    // Pay back 100 bytes of debt (0.1 s at 1000 B/s); the bucket re-checks on its timer.
    now = 150;
    await second;
    expect(released).toBe(true);
  });

  it('rate 0 is unlimited, and lifting the rate releases every waiter', async () => {
    const bucket = new TokenBucket(10, 0.1, () => 0);
    await bucket.take(1);
    const waiting = [bucket.take(1000), bucket.take(1000)];
    bucket.setRate(0);
    await Promise.all(waiting);
    await bucket.take(1e9);
    expect(bucket.bytesPerSecond).toBe(0);
  });

  it('refuses a negative rate', () => {
    expect(() => new TokenBucket(0).setRate(-1)).toThrow(RangeError);
  });
});

describe('ByteBudget', () => {
  it('holds back work that does not fit, FIFO, and runs an oversized request alone', async () => {
    const budget = new ByteBudget(10);
    const order: string[] = [];
    let releaseA!: () => void;
    const a = budget.run(6, () => new Promise<void>((r) => (releaseA = () => (order.push('a'), r()))));
    const b = budget.run(6, async () => void order.push('b'));
    const c = budget.run(20, async () => void order.push('c'));
    await Promise.resolve();
    expect(budget.inUse).toBe(6);
    expect(order).toEqual([]);
    releaseA();
    await Promise.all([a, b, c]);
    expect(order).toEqual(['a', 'b', 'c']);
    expect(budget.inUse).toBe(0);
    // With nothing in use, a request larger than the whole budget starts at once.
    expect(await budget.run(50, async () => budget.inUse)).toBe(50);
  });
});
