/** timeoutSignal: aborts at the timeout or with a source, and lets go of both once disposed. */
import { describe, expect, it } from 'vitest';
import { timeoutSignal } from '../../agent/util/abort.js';

describe('timeoutSignal', () => {
  it('aborts after the timeout, marked as timed out', async () => {
    const t = timeoutSignal(20);
    const started = Date.now();
    await new Promise((resolve) => t.signal.addEventListener('abort', resolve));
    expect(Date.now() - started).toBeGreaterThanOrEqual(15);
    expect(t.timedOut).toBe(true);
    expect((t.signal.reason as DOMException).name).toBe('TimeoutError');
  });

  it('aborts with any source, at once when one is already aborted, and not as a timeout', () => {
    const a = new AbortController();
    const b = new AbortController();
    const t = timeoutSignal(60_000, a.signal, b.signal);
    expect(t.signal.aborted).toBe(false);
    b.abort();
    expect(t.signal.aborted).toBe(true);
    expect(t.timedOut).toBe(false);
    const pre = timeoutSignal(60_000, AbortSignal.abort());
    expect(pre.signal.aborted).toBe(true);
  });

  it('does nothing after dispose: neither the timer nor a source aborts it', async () => {
    const source = new AbortController();
    const t = timeoutSignal(10, source.signal);
    t.dispose();
    source.abort();
    await new Promise((resolve) => setTimeout(resolve, 30));
    expect(t.signal.aborted).toBe(false);
  });
});
