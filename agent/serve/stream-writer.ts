/** Backpressure for a gRPC server stream: bounded memory per stream, whatever the client's pace. */
import type { ServerWritableStream } from '@grpc/grpc-js';

/**
 * Writes messages to a server stream with at most `window` of them not yet taken by the
 * transport. A write's callback fires once HTTP/2 flow control let its bytes out, so a slow client
 * holds the producer at `window` chunks (plus the one being read): memory per stream is bounded,
 * and nothing is read ahead of what the client consumes. `call.write()` returning false (the
 * Writable's own buffer full) is honoured too, by waiting for 'drain'.
 *
 * grpc-js drops writes silently once the call is cancelled (their callback never fires), so every
 * wait also ends when `signal` aborts.
 */
export class StreamWriter<T> {
  private pending = 0;
  private wake: (() => void) | undefined;
  private readonly notify = (): void => {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  };

  constructor(
    private readonly call: ServerWritableStream<unknown, T>,
    private readonly signal: AbortSignal,
    private readonly window = 2,
  ) {
    signal.addEventListener('abort', this.notify, { once: true });
    call.on('drain', this.notify);
  }

  /**
   * Resolves true once the message is handed over, false if the call ended first. `onSent` runs
   * when the transport took the bytes (never, if the call was cancelled meanwhile).
   */
  async write(message: T, onSent?: () => void): Promise<boolean> {
    while (this.pending >= this.window && !this.signal.aborted) await this.changed();
    if (this.signal.aborted) return false;
    this.pending++;
    const ok = this.call.write(message, () => {
      this.pending--;
      onSent?.();
      this.notify();
    });
    while (!ok && this.call.writableNeedDrain && !this.signal.aborted) await this.changed();
    return !this.signal.aborted;
  }

  /** Stop listening (the call is over). */
  dispose(): void {
    this.signal.removeEventListener('abort', this.notify);
    this.call.off('drain', this.notify);
    this.notify();
  }

  private changed(): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
    });
  }
}
