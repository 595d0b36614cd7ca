/** Backpressure for a server stream: bounded memory per stream, whatever the client's pace. */
import type { GrpcCall } from './h2-server.js';

/**
 * Writes messages to a call with at most `window` of them not yet taken by the socket. A write's
 * callback fires once HTTP/2 flow control let its bytes out, so a slow client holds the producer
 * at `window` messages (plus the one being read): memory per stream is bounded, and nothing is
 * read ahead of what the client consumes. Every wait also ends when the call aborts.
 */
export class StreamWriter<T> {
  private pending = 0;
  private readonly idlers: Array<() => void> = [];
  private wake: (() => void) | undefined;
  private readonly notify = (): void => {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  };

  constructor(
    private readonly call: GrpcCall,
    /** One message as a gRPC frame. */
    private readonly encode: (message: T) => Buffer,
    private readonly window = 2,
  ) {
    call.signal.addEventListener('abort', this.notify, { once: true });
  }

  /**
   * Resolves true once the message is handed over, false if the call ended first. `onSent` runs
   * when the socket took the bytes (never, if the call ended meanwhile).
   */
  async write(message: T, onSent?: () => void): Promise<boolean> {
    while (this.pending >= this.window && !this.call.done) await this.changed();
    if (this.call.done) return false;
    this.pending++;
    this.call.write(this.encode(message), (ok) => {
      this.pending--;
      if (ok) onSent?.();
      this.notify();
      if (this.pending === 0) for (const idle of this.idlers.splice(0)) idle();
    });
    return !this.call.done;
  }

  /**
   * Resolves once every write handed over has completed or failed (at once when none is pending).
   * Memory held by messages still in flight is accounted for until then.
   */
  idle(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    // A write whose stream is torn down may never call back: the stream's close settles it then.
    return Promise.race([new Promise<void>((resolve) => this.idlers.push(resolve)), this.call.streamClosed]);
  }

  /** Stop listening (the call is over). */
  dispose(): void {
    this.call.signal.removeEventListener('abort', this.notify);
    this.notify();
  }

  private changed(): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
    });
  }
}
