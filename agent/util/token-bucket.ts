/**
 * A token bucket for bytes per second, shared by every upload of a store, so that write-back
 * leaves network to the running tasks. The rate can change at any time: the drain lifts it
 * (0 = unlimited) and every waiter is released at once.
 */
import { Transform, type TransformCallback } from 'node:stream';

export class TokenBucket {
  private tokens: number;
  private last: number;
  private waiters: Array<{ need: number; resolve: () => void }> = [];
  private timer: NodeJS.Timeout | undefined;

  /** `rate` in bytes/s, 0 for unlimited; `burst` bytes may go at once after an idle spell. */
  constructor(
    private rate: number,
    private readonly burstSeconds = 0.25,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = this.capacity;
    this.last = this.now();
  }

  get bytesPerSecond(): number {
    return this.rate;
  }

  private get capacity(): number {
    return this.rate * this.burstSeconds;
  }

  setRate(bytesPerSecond: number): void {
    if (!Number.isFinite(bytesPerSecond) || bytesPerSecond < 0) throw new RangeError(`rate must be >= 0, got ${bytesPerSecond}`);
    this.refill();
    this.rate = bytesPerSecond;
    this.tokens = Math.min(this.tokens, this.capacity);
    this.schedule();
  }

  /** Resolves when `bytes` may be sent. Requests are served in order; a large one may go into debt. */
  take(bytes: number): Promise<void> {
    if (this.rate === 0 || (this.waiters.length === 0 && this.refill() >= 0 && this.tokens > 0)) {
      if (this.rate !== 0) this.tokens -= bytes;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.waiters.push({ need: bytes, resolve });
      this.schedule();
    });
  }

  private refill(): number {
    const t = this.now();
    if (this.rate > 0) this.tokens = Math.min(this.capacity, this.tokens + ((t - this.last) / 1000) * this.rate);
    this.last = t;
    return this.tokens;
  }

  private schedule(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.refill();
    while (this.waiters.length > 0 && (this.rate === 0 || this.tokens > 0)) {
      const w = this.waiters.shift() as { need: number; resolve: () => void };
      if (this.rate !== 0) this.tokens -= w.need;
      w.resolve();
    }
    if (this.waiters.length > 0) {
      // Wake when the debt is paid back; a timer is the point here (pacing), not polling.
      const waitMs = Math.max(1, Math.ceil((-this.tokens / this.rate) * 1000) + 1);
      this.timer = setTimeout(() => this.schedule(), waitMs);
    }
  }

  /** A pass-through stream that holds each chunk until the bucket lets it go. */
  throttle(): Transform {
    return new Transform({
      transform: (chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void => {
        this.take(chunk.length).then(() => callback(null, chunk), callback);
      },
    });
  }
}
