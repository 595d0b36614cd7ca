/** StoreHealth and the readiness policy, on a fake probe. */
import { describe, expect, it } from 'vitest';
import { StoreError } from '../../agent/store/block-store.js';
import { StoreHealth } from '../../agent/lifecycle/store-health.js';
import { readiness } from '../../agent/lifecycle/status-document.js';

class FakeProbe {
  readonly url = 's3://bucket/prefix';
  calls = 0;
  answer: () => Promise<void> = async () => undefined;
  probe(options: { write: boolean; signal?: AbortSignal }): Promise<void> {
    this.calls++;
    expect(options.write).toBe(true);
    return this.answer();
  }
}

describe('StoreHealth', () => {
  it('is unknown until the first probe, then reports the code and kind of a failure, and recovers', async () => {
    const probe = new FakeProbe();
    const up: boolean[] = [];
    let recovered = 0;
    const health = new StoreHealth({ store: probe, intervalMs: 0, timeoutMs: 1000, metrics: { storeUp: (u) => up.push(u), storeProbe: () => undefined }, onRecovered: () => recovered++ });
    expect(health.snapshot().ok).toBeUndefined();
    probe.answer = async () => {
      throw new StoreError('s3 HeadBucket: ECONNREFUSED', 'transient', 'ECONNREFUSED');
    };
    await health.start();
    expect(health.snapshot()).toMatchObject({ ok: false, code: 'ECONNREFUSED', kind: 'transient' });
    // A failed write asks for a probe at once; the store is back.
    probe.answer = async () => undefined;
    health.writeFailed();
    health.writeSucceeded();
    await new Promise((r) => setImmediate(r));
    expect(health.snapshot().ok).toBe(true);
    expect(up).toEqual([false, true]);
    expect(recovered).toBe(1);
    await health.close();
  });

  it('a probe that does not answer within the timeout counts as down (ProbeTimeout)', async () => {
    const probe = new FakeProbe();
    probe.answer = () => new Promise(() => undefined);
    const health = new StoreHealth({ store: probe, intervalMs: 0, timeoutMs: 50 });
    // The fake ignores the signal (as a file store on a hung mount would): the probe still ends.
    await health.start();
    expect(health.snapshot()).toMatchObject({ ok: false, code: 'ProbeTimeout', kind: 'transient' });
    await health.close();
  });

  it('skips the periodic probe while writes succeed', async () => {
    const probe = new FakeProbe();
    const health = new StoreHealth({ store: probe, intervalMs: 20, timeoutMs: 1000 });
    await health.start();
    const after = probe.calls;
    const writes = setInterval(() => health.writeSucceeded(), 5);
    await new Promise((r) => setTimeout(r, 150));
    clearInterval(writes);
    expect(probe.calls).toBe(after);
    await health.close();
  });
});

describe('readiness policy', () => {
  const ok = { ok: true, since: '' };
  it('is ready only serving or draining, with the store answering and no permanent write error', () => {
    expect(readiness('starting', ok, { failed: [] })).toEqual({ ready: false, reason: 'starting' });
    expect(readiness('serving', { ok: undefined, since: '' }, { failed: [] })).toEqual({ ready: false, reason: 'store not probed yet' });
    expect(readiness('serving', { ok: false, since: '', code: 'ECONNREFUSED', kind: 'transient' }, { failed: [] })).toEqual({ ready: false, reason: 'store does not answer (ECONNREFUSED)' });
    expect(readiness('serving', { ok: false, since: '', code: 'NoSuchBucket', kind: 'permanent' }, { failed: [] })).toEqual({ ready: false, reason: 'store refuses writes (NoSuchBucket)' });
    expect(readiness('draining', ok, { failed: [{ id: 'a/0/1', file: 'x', kind: 'permanent', code: 'AccessDenied', error: 'key a/0/1', attempts: 1, since: '' }] })).toEqual({
      ready: false,
      reason: 'store refuses writes (AccessDenied)',
    });
    expect(readiness('serving', ok, { failed: [] })).toEqual({ ready: true });
  });
});
