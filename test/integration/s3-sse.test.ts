/**
 * Buckets that encrypt with SSE-KMS or SSE-C answer ETags that are not MD5s (AWS documents this).
 * Against s3rver behind a proxy that answers like such a bucket, every upload path (one buffered
 * PUT, one streamed PUT, multipart) must store the object once, without a DeleteObject; and a
 * plain ETag mismatch (a server that stored other bytes) must fail the upload without deleting
 * the key, which may hold Spark's own copy by then.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { etagComparable } from '../../agent/store/s3/s3-errors.js';
import { StoreError } from '../../agent/store/block-store.js';
import { readAll, randomFile, tempDir } from '../support/local-files.js';
import { createBucket, startS3rver, storeOn, type S3Server } from '../kit/s3-servers.js';
import { SseProxy, type SseMode } from '../support/sse-proxy.js';

const MiB = 1024 * 1024;

describe('S3Store on SSE-KMS / SSE-C buckets (s3rver behind a proxy answering like AWS)', () => {
  let server: S3Server;
  let local: { dir: string; cleanup: () => Promise<void> };

  beforeAll(async () => {
    server = await startS3rver();
    local = await tempDir('sse-');
  });
  afterAll(async () => {
    await server?.close();
    await local?.cleanup();
  });

  it('recognises encrypted answers by their headers', () => {
    expect(etagComparable({})).toBe(true);
    expect(etagComparable({ ServerSideEncryption: 'AES256' })).toBe(true);
    expect(etagComparable({ ServerSideEncryption: 'aws:kms' })).toBe(false);
    expect(etagComparable({ ServerSideEncryption: 'aws:kms:dsse' })).toBe(false);
    expect(etagComparable({ SSECustomerAlgorithm: 'AES256' })).toBe(false);
  });

  for (const mode of ['sse-kms', 'sse-c'] as SseMode[]) {
    it(`${mode}: stores buffered, streamed and multipart uploads once, and never sends DeleteObject`, async () => {
      const proxy = await SseProxy.start(server.endpoint, mode);
      const bucket = await createBucket(server, mode);
      const store = storeOn({ ...server, endpoint: proxy.endpoint }, bucket, {
        prefix: '',
        maxBufferedFile: 1 * MiB,
        multipartThreshold: 6 * MiB,
        partSize: 5 * MiB,
        requestAttempts: 1,
      });
      try {
        const cases = [
          { name: 'small', size: 200 * 1024 },
          { name: 'streamed', size: 3 * MiB },
          { name: 'multipart', size: 11 * MiB },
        ];
        for (const c of cases) {
          const { file, bytes } = await randomFile(local.dir, `${mode}-${c.name}`, c.size);
          const key = `app/0/1/${mode}-${c.name}`;
          const stored = await store.put(key, file);
          expect(stored.size).toBe(c.size);
          expect((await readAll(await store.read(key))).equals(bytes), c.name).toBe(true);
          expect(await store.holds(key, file)).toBe(true);
        }
        expect(proxy.deletes).toBe(0);
        // One PUT per single-part object (no retry loop), and one multipart upload.
        const puts = proxy.requests.filter((r) => r.method === 'PUT' && !r.url.includes('partNumber=') && !r.url.endsWith(`/${bucket}`));
        expect(puts.length).toBe(2);
      } finally {
        await store.close();
        await proxy.close();
      }
    });
  }

  it('a plain ETag mismatch fails the upload as retryable, and still deletes nothing', async () => {
    const proxy = await SseProxy.start(server.endpoint, 'mismatch');
    const bucket = await createBucket(server, 'mismatch');
    const store = storeOn({ ...server, endpoint: proxy.endpoint }, bucket, { prefix: '', maxBufferedFile: 1 * MiB, requestAttempts: 1 });
    try {
      for (const size of [100 * 1024, 2 * MiB]) {
        const { file } = await randomFile(local.dir, `mismatch-${size}`, size);
        const err = await store.put(`app/0/1/mismatch-${size}`, file).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(StoreError);
        expect((err as StoreError).code).toBe('ETagMismatch');
        expect((err as StoreError).kind).toBe('transient');
      }
      expect(proxy.deletes).toBe(0);
    } finally {
      await store.close();
      await proxy.close();
    }
  });
});
