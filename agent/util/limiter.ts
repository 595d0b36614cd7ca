/** A counting semaphore: at most `limit` tasks run at once, the rest wait in FIFO order. */
export class Limiter {
  private active = 0;
  /** FIFO of waiting tasks; `head` advances instead of shift(), which is O(n) on long queues. */
  private waiting: Array<() => void> = [];
  private head = 0;

  constructor(private limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be a positive integer, got ${limit}`);
  }

  get running(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiting.length - this.head;
  }

  /** Change the limit; waiting tasks start at once if it grew. */
  setLimit(limit: number): void {
    this.limit = limit;
    this.pump();
  }

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await task();
    } finally {
      this.active--;
      this.pump();
    }
  }

  private pump(): void {
    while (this.active < this.limit && this.head < this.waiting.length) {
      this.active++;
      const next = this.waiting[this.head] as () => void;
      this.head++;
      if (this.head > 1024 && this.head * 2 > this.waiting.length) {
        this.waiting = this.waiting.slice(this.head);
        this.head = 0;
      }
      next();
    }
  }
}

/**
 * A budget of bytes held at once (buffers in flight): `run(n, task)` waits until `n` more bytes
 * fit, FIFO. A request larger than the whole budget runs alone rather than never.
 */
export class ByteBudget {
  private used = 0;
  private readonly waiting: Array<{ bytes: number; start: () => void }> = [];

  constructor(private readonly capacity: number) {
    if (!(capacity > 0)) throw new RangeError(`capacity must be positive, got ${capacity}`);
  }

  get inUse(): number {
    return this.used;
  }

  async run<T>(bytes: number, task: () => Promise<T>): Promise<T> {
    // A waiter's bytes are reserved by pump() before it starts.
    if (this.waiting.length > 0 || !this.fits(bytes)) await new Promise<void>((start) => this.waiting.push({ bytes, start }));
    else this.used += bytes;
    try {
      return await task();
    } finally {
      this.used -= bytes;
      this.pump();
    }
  }

  private fits(bytes: number): boolean {
    return this.used === 0 || this.used + bytes <= this.capacity;
  }

  private pump(): void {
    while (this.waiting.length > 0 && this.fits((this.waiting[0] as { bytes: number }).bytes)) {
      const next = this.waiting.shift() as { bytes: number; start: () => void };
      this.used += next.bytes;
      next.start();
    }
  }
}
