/**
 * S3Store behaviour beyond the conformance suite, on both servers: digests in metadata, holds()
 * comparing content, error kinds, leftover multipart uploads, bandwidth ceiling, and on Swift
 * (which verifies Content-MD5 and signed payloads) corrupted uploads being refused.
 */
import { createHash } from 'node:crypto';
import { open, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CreateMultipartUploadCommand, UploadPartCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreError } from '../../agent/store/block-store.js';
import type { S3Store } from '../../agent/store/s3/s3-store.js';
import { classify } from '../../agent/store/s3/s3-errors.js';
import { openStore, isBandwidthLimited } from '../../agent/store/open-store.js';
import { FileStore } from '../../agent/store/file-store.js';
import { FaultProxy } from '../kit/fault-proxy.js';
import { RecordingS3Metrics } from '../support/recording-metrics.js';
import { randomFile, readAll, tempDir } from '../support/local-files.js';
import { createBucket, rawClient, startS3rver, storeOn, swiftS3, type S3Server } from '../kit/s3-servers.js';

const MiB = 1024 * 1024;
const multipart = { multipartThreshold: 6 * MiB, partSize: 5 * MiB };

let local: { dir: string; cleanup: () => Promise<void> };
beforeAll(async () => {
  local = await tempDir('s3-store-');
});
afterAll(async () => {
  await local?.cleanup();
});

describe('S3Store on s3rver', () => {
  let server: S3Server;
  let bucket: string;
  let store: S3Store;
  beforeAll(async () => {
    server = await startS3rver();
    bucket = await createBucket(server, 'spec');
    store = storeOn(server, bucket, multipart);
  });
  afterAll(async () => {
    await store?.close();
    await server?.close();
  });

  it('keeps a digest in metadata (MD5 for single PUTs, SHA-256 for multipart) and holds() compares content', async () => {
    const { file, bytes } = await randomFile(local.dir, 'x.data', 4096);
    await store.put('app/0/1/x', file);
    expect((await store.stat('app/0/1/x'))?.digest).toBe(`md5:${createHash('md5').update(bytes).digest('hex')}`);
    expect(await store.holds('app/0/1/x', file)).toBe(true);
    const same = join(local.dir, 'same-size.data');
    await writeFile(same, Buffer.alloc(4096, 7));
    expect(await store.holds('app/0/1/x', { path: same, size: 4096 })).toBe(false);

    const large = await randomFile(local.dir, 'xl.data', 7 * MiB);
    await store.put('app/0/1/xl', large.file);
    expect((await store.stat('app/0/1/xl'))?.digest).toBe(`sha256:${createHash('sha256').update(large.bytes).digest('hex')}`);
    expect(await store.holds('app/0/1/xl', large.file)).toBe(true);
    await writeFile(same, Buffer.alloc(7 * MiB, 7));
    expect(await store.holds('app/0/1/xl', { path: same, size: 7 * MiB })).toBe(false);
  });

  it('streams single PUTs above the buffering limit, through a held descriptor after unlink', async () => {
    const streaming = storeOn(server, bucket, { ...multipart, maxBufferedFile: MiB });
    const { file, bytes } = await randomFile(local.dir, 'st.data', 3 * MiB + 17);
    const handle = await open(file.path, 'r');
    try {
      await unlink(file.path);
      await streaming.put('app/0/1/st', { ...file, handle });
      await streaming.put('app/0/1/st', { ...file, handle });
    } finally {
      await handle.close();
    }
    expect((await readAll(await streaming.read('app/0/1/st'))).equals(bytes)).toBe(true);
    expect((await streaming.stat('app/0/1/st'))?.digest).toBe(`md5:${createHash('md5').update(bytes).digest('hex')}`);
    const err = await streaming.put('app/0/1/st2', { path: join(local.dir, 'absent'), size: 2 * MiB }).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'StoreError', kind: 'source-gone' });
    await streaming.close();
  });

  it('writes under the prefix', async () => {
    const { file } = await randomFile(local.dir, 'p.data', 10);
    await store.put('app/0/1/p', file);
    const other = storeOn(server, bucket, { prefix: '' });
    expect((await other.stat('fallback/root/app/0/1/p'))?.size).toBe(10);
    await other.close();
  });

  it('a missing bucket is a permanent error', async () => {
    const missing = storeOn(server, 'no-such-bucket-here');
    const { file } = await randomFile(local.dir, 'nb.data', 10);
    const err = await missing.put('a/0/1/b', file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect(err).toMatchObject({ kind: 'permanent', code: 'NoSuchBucket' });
    await missing.close();
  });

  it('the bandwidth ceiling paces uploads, and lifting it releases a running upload', async () => {
    const { file } = await randomFile(local.dir, 'bw.data', 3 * MiB);
    store.setBandwidthLimit(4 * MiB);
    let t = performance.now();
    await store.put('app/0/1/bw', file);
    // 3 MiB at 4 MiB/s with a 1 MiB burst: at least (3 - 1) / 4 s.
    expect(performance.now() - t).toBeGreaterThan(450);

    const { file: big } = await randomFile(local.dir, 'bw2.data', 5 * MiB);
    store.setBandwidthLimit(512 * 1024);
    t = performance.now();
    const upload = store.put('app/0/1/bw2', big);
    setTimeout(() => store.setBandwidthLimit(0), 300);
    await upload;
    // At 512 KiB/s this would take about 10 s; lifted after 0.3 s it finishes at once.
    expect(performance.now() - t).toBeLessThan(4000);
    expect(store.bandwidthLimit).toBe(0);
  });

  it('openStore opens file: and s3:// URLs', async () => {
    const fileStore = await openStore(`file://${local.dir}/fs`);
    expect(fileStore).toBeInstanceOf(FileStore);
    expect(fileStore.url).toBe(`file://${local.dir}/fs`);
    const relative = await openStore('file:./var/test-relative-store');
    expect(relative.url).toBe(`file://${process.cwd()}/var/test-relative-store`);
    expect(isBandwidthLimited(fileStore)).toBe(false);
    const s3 = await openStore(`s3://${bucket}/some/prefix/`, {
      s3Endpoint: server.endpoint,
      s3ForcePathStyle: true,
      s3Checksums: 'when_required',
      s3Credentials: server.credentials,
    });
    expect(s3.url).toBe(`s3://${bucket}/some/prefix`);
    expect(isBandwidthLimited(s3)).toBe(true);
    const { file, bytes } = await randomFile(local.dir, 'os.data', 100);
    await s3.put('a/0/1/os', file);
    expect(await readAll(await s3.read('a/0/1/os'))).toEqual(bytes);
    await s3.close();
    await expect(openStore('ftp://x')).rejects.toThrow(/unsupported store/);
  });
});

describe('S3Store on Swift s3api', () => {
  let server: S3Server;
  let bucket: string;
  let store: S3Store;
  beforeAll(async () => {
    server = await swiftS3();
    bucket = await createBucket(server, 'spec');
    store = storeOn(server, bucket, multipart);
  });
  afterAll(async () => {
    await store?.close();
  });

  it('a corrupted body is refused by the server and nothing is stored (single PUT and multipart)', async () => {
    const proxy = await FaultProxy.start(server.endpoint, (r) => (r.hasBody ? 'corrupt-body' : undefined));
    const through = storeOn({ ...server, endpoint: proxy.endpoint }, bucket, { ...multipart, maxBufferedFile: MiB, requestAttempts: 1 });
    try {
      // Buffered single PUT, streamed single PUT, multipart.
      for (const [name, size] of [['small', 200_000], ['medium', 3 * MiB], ['large', 11 * MiB]] as const) {
        const { file } = await randomFile(local.dir, `${name}.data`, size);
        const err = await through.put(`corrupt/0/1/${name}`, file).catch((e: unknown) => e);
        expect(err, name).toBeInstanceOf(StoreError);
        // Refused by Swift itself (not by our ETag check): BadDigest or a payload hash mismatch.
        expect((err as StoreError).code, name).toMatch(/BadDigest|XAmzContentSHA256Mismatch/);
        expect(await store.stat(`corrupt/0/1/${name}`), name).toBeUndefined();
      }
      expect(proxy.injected['corrupt-body']).toBeGreaterThanOrEqual(3);
      // The failed multipart upload was aborted.
      expect(await store.pendingUploads('corrupt/')).toEqual([]);
    } finally {
      await through.close();
      await proxy.close();
    }
  });

  it('a CompleteMultipartUpload whose answer is lost is recognised as done on retry', async () => {
    let lost = 0;
    const proxy = await FaultProxy.start(server.endpoint, (r) =>
      r.method === 'POST' && r.url.includes('uploadId=') && lost++ === 0 ? 'reset-after-upstream' : undefined,
    );
    const metrics = new RecordingS3Metrics();
    const through = storeOn({ ...server, endpoint: proxy.endpoint }, bucket, { ...multipart, metrics });
    try {
      const { file, bytes } = await randomFile(local.dir, 'lost.data', 11 * MiB);
      await through.put('lost/0/1/x', file);
      expect(proxy.injected['reset-after-upstream']).toBe(1);
      expect(metrics.retries.get('CompleteMultipartUpload:ECONNRESET') ?? metrics.totalRetries).toBeGreaterThan(0);
      // Exactly one multipart upload was created: the retry did not start the file over.
      expect(metrics.requests.get('CreateMultipartUpload:ok')).toBe(1);
      expect((await readAll(await store.read('lost/0/1/x'))).equals(bytes)).toBe(true);
      expect(await store.pendingUploads('lost/')).toEqual([]);
    } finally {
      await through.close();
      await proxy.close();
    }
  });

  it('bad credentials are a permanent error', async () => {
    const bad = storeOn({ ...server, credentials: { accessKeyId: 'test:tester', secretAccessKey: 'wrong' } }, bucket);
    const { file } = await randomFile(local.dir, 'cred.data', 10);
    const err = await bad.put('a/0/1/cred', file).catch((e: unknown) => e);
    expect(err).toMatchObject({ name: 'StoreError', kind: 'permanent' });
    await bad.close();
  });

  it('aborts a multipart upload a killed predecessor left for the same key, then stores the file', async () => {
    const key = 'left/0/1/shuffle_0_1_0.data';
    const objectKey = store.objectKey(key);
    const raw = rawClient(server);
    const created = await raw.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: objectKey }));
    await raw.send(new UploadPartCommand({ Bucket: bucket, Key: objectKey, UploadId: created.UploadId, PartNumber: 1, Body: Buffer.alloc(5 * MiB, 1) }));
    raw.destroy();
    expect((await store.pendingUploads('left/')).map((u) => u.key)).toEqual([key]);
    const { file, bytes } = await randomFile(local.dir, 'left.data', 11 * MiB);
    await store.put(key, file);
    expect(await store.pendingUploads('left/')).toEqual([]);
    expect((await readAll(await store.read(key))).equals(bytes)).toBe(true);
  });

  it('abortStaleUploads aborts old uploads under the prefix and keeps young ones', async () => {
    const raw = rawClient(server);
    const objectKey = store.objectKey('stale/0/1/x');
    await raw.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: objectKey }));
    raw.destroy();
    expect(await store.abortStaleUploads(3_600_000)).toBe(0);
    expect(await store.pendingUploads('stale/')).toHaveLength(1);
    expect(await store.abortStaleUploads(0, Date.now() + 60_000)).toBeGreaterThanOrEqual(1);
    expect(await store.pendingUploads('stale/')).toEqual([]);
  });

  it('deleteMany removes keys (DeleteObjects with the Content-MD5 Swift requires)', async () => {
    const { file } = await randomFile(local.dir, 'dm.data', 10);
    const keys = ['dm/0/1/a', 'dm/0/1/b', 'dm/0/2/c'];
    for (const k of keys) await store.put(k, file);
    expect(await store.deleteMany(keys)).toBe(3);
    const left: string[] = [];
    for await (const o of store.list('dm/')) left.push(o.key);
    expect(left).toEqual([]);
  });
});

describe('error classification', () => {
  const sdk = (name: string, status?: number, code?: string): unknown =>
    Object.assign(new Error(name), { name, ...(code ? { code } : {}), ...(status ? { $metadata: { httpStatusCode: status } } : {}) });
  it.each([
    ['SlowDown', 503, undefined, 'transient'],
    ['InternalError', 500, undefined, 'transient'],
    ['Unknown', 502, undefined, 'transient'],
    ['TimeoutError', undefined, undefined, 'transient'],
    ['Error', undefined, 'ECONNRESET', 'transient'],
    ['BadDigest', 400, undefined, 'transient'],
    ['AccessDenied', 403, undefined, 'permanent'],
    ['NoSuchBucket', 404, undefined, 'permanent'],
    ['InvalidAccessKeyId', 403, undefined, 'permanent'],
    ['SignatureDoesNotMatch', 403, undefined, 'permanent'],
    ['Forbidden', 403, undefined, 'permanent'],
  ] as const)('%s (HTTP %s, %s) is %s', (name, status, code, kind) => {
    expect(classify('PutObject', 'k', sdk(name, status, code)).kind).toBe(kind);
  });
});
