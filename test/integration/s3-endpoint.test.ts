/**
 * Every request of the agent goes where the SDK's would (issue 17, item 3): the upload path
 * (S3Putter) takes its endpoint, scheme, path style and signing region from the SDK's own
 * resolution, so `AWS_ENDPOINT_URL_S3`, FIPS and dual-stack settings reach uploads too. Before,
 * an unset `--s3-endpoint` sent every PUT to `s3.<region>.amazonaws.com` while the SDK's other
 * requests went to the configured server.
 */
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { S3Store } from '../../agent/store/s3/s3-store.js';
import { openS3Target } from '../../agent/store/s3/s3-target.js';
import { FaultProxy } from '../kit/fault-proxy.js';
import { RecordingS3Metrics } from '../support/recording-metrics.js';
import { createBucket, rawClient, startS3rver, type S3Server } from '../kit/s3-servers.js';
import { randomFile, tempDir } from '../support/local-files.js';

const ENDPOINT_ENV = ['AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL', 'AWS_USE_FIPS_ENDPOINT', 'AWS_USE_DUALSTACK_ENDPOINT'] as const;
const saved = Object.fromEntries(ENDPOINT_ENV.map((k) => [k, process.env[k]]));

function setEnv(values: Partial<Record<(typeof ENDPOINT_ENV)[number], string>>): void {
  for (const k of ENDPOINT_ENV) delete process.env[k];
  Object.assign(process.env, values);
}

afterEach(() => {
  for (const k of ENDPOINT_ENV) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
});

describe('S3 endpoint resolution shared by both clients', () => {
  let server: S3Server;
  let dir: { dir: string; cleanup: () => Promise<void> };
  beforeAll(async () => {
    server = await startS3rver();
    dir = await tempDir('s3-endpoint-');
  });
  afterAll(async () => {
    await dir.cleanup();
    await server.close();
  });

  it('with AWS_ENDPOINT_URL_S3 and no --s3-endpoint, uploads (single and multipart) reach that server', async () => {
    const bucket = await createBucket(server, 'endpoint-env');
    // The proxy counts what reaches the loopback server; the store's metrics count what it sent.
    const proxy = await FaultProxy.start(server.endpoint);
    setEnv({ AWS_ENDPOINT_URL_S3: proxy.endpoint });
    const metrics = new RecordingS3Metrics();
    const store = new S3Store({
      bucket,
      prefix: 'root',
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: server.credentials,
      checksums: 'when_required',
      multipartThreshold: 6 * 1024 * 1024,
      partSize: 5 * 1024 * 1024,
      // One attempt each: a request that went elsewhere fails the test at once.
      requestAttempts: 1,
      metrics,
    });
    try {
      const small = await randomFile(dir.dir, 'small', 4096);
      const large = await randomFile(dir.dir, 'large', 11 * 1024 * 1024);
      await store.put('app/0/shuffle_0_1_0.data', small.file);
      await store.put('app/0/shuffle_0_2_0.data', large.file);
      await store.probe({ write: true });
      // Every request the store made reached the loopback server.
      const sent = [...metrics.requests.values()].reduce((a, b) => a + b, 0);
      expect(proxy.forwarded).toBe(sent);
      expect(metrics.requests.get('PutObject:ok')).toBe(1);
      expect(metrics.requests.get('UploadPart:ok')).toBe(3);
    } finally {
      await store.close();
      await proxy.close();
    }
    const client = rawClient(server);
    try {
      const got = await client.send(new GetObjectCommand({ Bucket: bucket, Key: 'root/app/0/shuffle_0_1_0.data' }));
      expect((await got.Body?.transformToByteArray())?.length).toBe(4096);
      const big = await client.send(new GetObjectCommand({ Bucket: bucket, Key: 'root/app/0/shuffle_0_2_0.data' }));
      expect(big.ContentLength).toBe(11 * 1024 * 1024);
    } finally {
      client.destroy();
    }
  });

  // Resolution only (nothing is sent): what the SDK's endpoint rules answer for AWS settings.
  const resolved = async (bucket: string, env: Parameters<typeof setEnv>[0], extra: { endpoint?: string; forcePathStyle?: boolean } = {}) => {
    setEnv(env);
    const target = openS3Target({ bucket, region: 'us-west-2', credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, requestTimeoutMs: 1000, connectTimeoutMs: 1000, maxSockets: 2, ...extra });
    try {
      return await target.putEndpoint();
    } finally {
      target.destroy();
    }
  };

  it('follows the SDK for AWS endpoints: regional, FIPS, dual-stack, dotted bucket names, path style', async () => {
    expect(await resolved('bkt', {})).toEqual({ protocol: 'https:', hostname: 'bkt.s3.us-west-2.amazonaws.com', port: '', basePath: '', signingRegion: 'us-west-2' });
    expect(await resolved('bkt', { AWS_USE_FIPS_ENDPOINT: 'true' })).toMatchObject({ hostname: 'bkt.s3-fips.us-west-2.amazonaws.com', basePath: '' });
    expect(await resolved('bkt', { AWS_USE_DUALSTACK_ENDPOINT: 'true' })).toMatchObject({ hostname: 'bkt.s3.dualstack.us-west-2.amazonaws.com' });
    expect(await resolved('my.bucket', {})).toMatchObject({ hostname: 's3.us-west-2.amazonaws.com', basePath: '/my.bucket' });
    expect(await resolved('bkt', {}, { forcePathStyle: true })).toMatchObject({ hostname: 's3.us-west-2.amazonaws.com', basePath: '/bkt' });
  });

  it('takes AWS_ENDPOINT_URL when no service-specific variable is set, and --s3-endpoint over both', async () => {
    expect(await resolved('bkt', { AWS_ENDPOINT_URL: 'http://127.0.0.1:9/base' }, { forcePathStyle: true })).toEqual({
      protocol: 'http:',
      hostname: '127.0.0.1',
      port: '9',
      basePath: '/base/bkt',
      signingRegion: 'us-west-2',
    });
    expect(await resolved('bkt', { AWS_ENDPOINT_URL_S3: 'http://127.0.0.2:8' }, { endpoint: 'http://127.0.0.3:7', forcePathStyle: true })).toMatchObject({ hostname: '127.0.0.3', port: '7' });
  });
});
