/**
 * SIGTERM and SIGINT. Every delivery is its own notice (`SIGTERM#1`, `SIGTERM#2`...), so the
 * notice store can tell a second signal from a repeated poll and decide to exit at once.
 */
import type { EmitNotice, TerminationSource } from '../notice.js';

/** The part of `process` the source needs; tests pass an EventEmitter. */
export interface SignalTarget {
  on(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
  off(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
}

export class SignalSource implements TerminationSource {
  readonly name = 'sigterm' as const;
  private count = 0;

  constructor(
    private readonly target: SignalTarget = process,
    private readonly signals: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT'],
  ) {}

  run(emit: EmitNotice, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.resolve();
    const listener = (sig: NodeJS.Signals): void => {
      this.count++;
      emit({ id: `${sig}#${this.count}`, kind: 'exit', source: 'signal', detail: { signal: sig } });
    };
    for (const s of this.signals) this.target.on(s, listener);
    return new Promise((resolve) => {
      signal.addEventListener(
        'abort',
        () => {
          for (const s of this.signals) this.target.off(s, listener);
          resolve();
        },
        { once: true },
      );
    });
  }
}
