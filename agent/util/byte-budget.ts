/**
 * A budget of bytes held in memory, shared by everything that reads before it sends: the gRPC
 * server's streams (through leases) and the S3 store's buffered uploads (through `run`), so memory
 * stays bounded however much runs at once. A request larger than the whole budget runs alone.
 *
 * For the server: bytes read from disk or store and not yet sent, so memory stays bounded however
 * many streams are open. Each stream may always hold one chunk
 * (so a stream whose client stalls cannot starve the others of their first chunk); beyond that
 * it waits, first come first served, until the budget has room.
 */
export class ByteBudget {
  private used = 0;
  private readonly waiters: Array<{ n: number; grant: () => void }> = [];

  constructor(readonly limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`byte budget must be a positive integer, got ${limit}`);
  }

  get inUse(): number {
    return this.used;
  }

  /** A stream's share: what it holds is returned by `close()` whatever happened to its writes. */
  lease(): BudgetLease {
    return new BudgetLease(this);
  }

  /** Run `task` holding `bytes` of the budget; waits (first come, first served) until they fit. */
  async run<T>(bytes: number, task: () => Promise<T>): Promise<T> {
    await this.take(bytes, 1);
    try {
      return await task();
    } finally {
      this.give(bytes);
    }
  }

  /** @internal */
  take(n: number, holding: number, signal?: AbortSignal): Promise<boolean> | boolean {
    if (signal?.aborted) return false;
    if (holding === 0 || (this.waiters.length === 0 && (this.used === 0 || this.used + n <= this.limit))) {
      this.used += n;
      return true;
    }
    return new Promise((resolve) => {
      const waiter = {
        n,
        grant: (): void => {
          signal?.removeEventListener('abort', onAbort);
          this.used += n;
          resolve(true);
        },
      };
      const onAbort = (): void => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve(false);
        this.pump();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  /** @internal */
  give(n: number): void {
    this.used -= n;
    this.pump();
  }

  private pump(): void {
    while (this.waiters.length > 0) {
      const w = this.waiters[0] as { n: number; grant: () => void };
      if (this.used + w.n > this.limit && this.used > 0) return;
      this.waiters.shift();
      w.grant();
    }
  }
}

export class BudgetLease {
  private held = 0;
  private closed = false;

  constructor(private readonly budget: ByteBudget) {}

  /** Resolves false when `signal` aborts first. */
  async acquire(n: number, signal: AbortSignal): Promise<boolean> {
    const ok = await this.budget.take(n, this.held, signal);
    if (ok) {
      if (this.closed) {
        this.budget.give(n);
        return false;
      }
      this.held += n;
    }
    return ok;
  }

  release(n: number): void {
    if (this.closed || n <= 0) return;
    const r = Math.min(n, this.held);
    this.held -= r;
    this.budget.give(r);
  }

  /** Return everything still held (writes a cancelled call dropped never call back). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const r = this.held;
    this.held = 0;
    if (r > 0) this.budget.give(r);
  }
}
