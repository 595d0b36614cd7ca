/**
 * The default credential chain's failures held for a moment (store/s3/credentials.ts): thousands of
 * outputs retried while no credentials exist ran the SDK's whole chain each time.
 */
import { describe, expect, it } from 'vitest';
import { defaultChainHoldingFailures, holdFailures } from '../../agent/store/s3/credentials.js';
import { openS3Target } from '../../agent/store/s3/s3-target.js';

describe('holdFailures', () => {
  it('answers a failure again without calling the provider until the hold is over', async () => {
    let t = 0;
    let calls = 0;
    const failure = new Error('Could not load credentials from any providers');
    const held = holdFailures(async () => {
      calls++;
      throw failure;
    }, 1000, () => t);
    for (let i = 0; i < 50; i++) await expect(held()).rejects.toBe(failure);
    expect(calls).toBe(1);
    t = 999;
    await expect(held()).rejects.toBe(failure);
    expect(calls).toBe(1);
    t = 1000;
    await expect(held()).rejects.toBe(failure);
    expect(calls).toBe(2);
  });

  it('passes every call through once the provider answers, and holds nothing after a success', async () => {
    let t = 0;
    let calls = 0;
    let fail = true;
    const held = holdFailures(async (n: number) => {
      calls++;
      if (fail) throw new Error('not yet');
      return { accessKeyId: `key-${n}`, secretAccessKey: 's' };
    }, 1000, () => t);
    await expect(held(1)).rejects.toThrow('not yet');
    fail = false;
    t = 1000;
    await expect(held(2)).resolves.toEqual({ accessKeyId: 'key-2', secretAccessKey: 's' });
    await expect(held(3)).resolves.toEqual({ accessKeyId: 'key-3', secretAccessKey: 's' });
    expect(calls).toBe(3);
    // A failure after a success is held from its own time on.
    fail = true;
    await expect(held(4)).rejects.toThrow('not yet');
    await expect(held(5)).rejects.toThrow('not yet');
    expect(calls).toBe(4);
  });
});

describe('openS3Target', () => {
  const base = { bucket: 'bucket-a', endpoint: 'http://127.0.0.1:9', requestTimeoutMs: 1000, connectTimeoutMs: 1000, maxSockets: 2 };

  it('gives the SDK the default chain with failures held when no credentials are configured', () => {
    const target = openS3Target(base);
    try {
      expect(target.client.config.credentialDefaultProvider).toBe(defaultChainHoldingFailures);
    } finally {
      target.destroy();
    }
  });

  it('uses static credentials as they are', async () => {
    const target = openS3Target({ ...base, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
    try {
      await expect(target.client.config.credentials()).resolves.toMatchObject({ accessKeyId: 'a', secretAccessKey: 'b' });
    } finally {
      target.destroy();
    }
  });
});
