/**
 * bench:writeback's store far away: `scripts/swift-s3.sh latency MS` runs a second Swift proxy
 * server whose first filter (scripts/swift/swift_latency.py) holds every answer back by MS ms.
 * Requests through it are handled as through the first (a PUT lands, whole), each answer comes
 * MS ms later, and answers wait side by side, not one after another.
 */
import { randomBytes } from 'node:crypto';
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { rawClient, swiftScript } from '../kit/s3-servers.js';

const DELAY_MS = 150;
const credentials = { accessKeyId: 'test:tester', secretAccessKey: 'testing' };
const bucket = `latency-${process.pid}`;
let direct: S3Client;
let slow: S3Client;

beforeAll(async () => {
  const directEndpoint = await swiftScript('start');
  const slowEndpoint = await swiftScript('latency', String(DELAY_MS));
  expect(slowEndpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  expect(slowEndpoint).not.toBe(directEndpoint);
  // Asked again, the running one is reused.
  expect(await swiftScript('latency', String(DELAY_MS))).toBe(slowEndpoint);
  direct = rawClient({ endpoint: directEndpoint, credentials, close: async () => undefined });
  slow = rawClient({ endpoint: slowEndpoint, credentials, close: async () => undefined });
  await direct.send(new CreateBucketCommand({ Bucket: bucket })).catch((err: { name?: string }) => {
    if (err.name !== 'BucketAlreadyOwnedByYou' && err.name !== 'BucketAlreadyExists') throw err;
  });
}, 300_000);

afterAll(() => {
  direct?.destroy();
  slow?.destroy();
});

async function timed<T>(f: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await f();
  return { ms: performance.now() - t0, value };
}

it('answers every request through the slow proxy server DELAY_MS later, and stores what was sent', async () => {
  const body = randomBytes(256 * 1024);
  const put = await timed(() => slow.send(new PutObjectCommand({ Bucket: bucket, Key: 'k.data', Body: body })));
  expect(put.ms).toBeGreaterThanOrEqual(DELAY_MS - 5);
  const got = await direct.send(new GetObjectCommand({ Bucket: bucket, Key: 'k.data' }));
  expect(Buffer.from(await got.Body!.transformToByteArray()).equals(body)).toBe(true);

  const fast = await timed(() => direct.send(new HeadObjectCommand({ Bucket: bucket, Key: 'k.data' })));
  const heads = await Promise.all([1, 2, 3].map(() => timed(() => slow.send(new HeadObjectCommand({ Bucket: bucket, Key: 'k.data' })))));
  for (const h of heads) {
    expect(h.value.ContentLength).toBe(body.length);
    expect(h.ms).toBeGreaterThanOrEqual(DELAY_MS - 5);
  }
  // The direct server is not slowed down; the slow one's answers wait side by side.
  expect(fast.ms).toBeLessThan(DELAY_MS);
  expect(Math.max(...heads.map((h) => h.ms))).toBeLessThan(3 * DELAY_MS);
});
