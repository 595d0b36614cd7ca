/**
 * The stores the end-to-end tests run against, behind one shape so each test is written once:
 * a `--store` URL, a way to take the store down and bring it back (a backlog builds up while it is
 * down, deterministically), and a reader of stored objects.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { FaultProxy } from './fault-proxy.js';

export interface StoreFixture {
  name: string;
  /** `--store URL` and whatever else the agent needs to reach it. */
  args: string[];
  /** Environment for the agent (credentials). */
  env: NodeJS.ProcessEnv;
  /** Make every write fail (transiently) from now on. */
  down(): Promise<void>;
  /** Make writes succeed again. */
  up(): Promise<void>;
  /** The stored bytes of `key`, or undefined when absent. */
  read(key: string): Promise<Buffer | undefined>;
  /** Make one key unwritable while the store is up (a directory in the way). */
  block(key: string): Promise<void>;
  close(): Promise<void>;
}

/** A directory store. Down: a regular file stands where the root directory should be. */
export async function fileStoreFixture(dir: string): Promise<StoreFixture> {
  const root = join(dir, 'store');
  return {
    name: 'file',
    args: ['--store', `file:${root}`],
    env: {},
    async down() {
      await rm(root, { recursive: true, force: true });
      await writeFile(root, 'the store is down\n');
    },
    async up() {
      await rm(root, { force: true });
      await mkdir(root, { recursive: true });
    },
    async read(key) {
      try {
        return await readFile(join(root, key));
      } catch {
        return undefined;
      }
    },
    async block(key) {
      await mkdir(join(root, key, 'in-the-way'), { recursive: true });
    },
    async close() {
      // Nothing runs.
    },
  };
}

/**
 * s3rver on 127.0.0.1 (a real S3 protocol server) behind a fault proxy. Down: the proxy resets
 * every connection before it reaches s3rver; up: it forwards again.
 *
 * Not by stopping s3rver and starting it again on the same port: while it is down, the agent's
 * retries connect to that port over and over from ephemeral ports of the same range, so a socket
 * may come to hold it (a TCP self-connect) and the restart could not bind; s3rver's `run()` then
 * never settles. The proxy keeps its port for the whole test.
 */
export async function s3rverStoreFixture(dir: string): Promise<StoreFixture> {
  const directory = join(dir, 's3rver');
  await mkdir(directory, { recursive: true });
  const bucket = 'shuffle';
  const prefix = 'fallback';
  const server = new S3rver({ port: 0, address: '127.0.0.1', directory, silent: true, configureBuckets: [{ name: bucket }] });
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  let down = false;
  const proxy = await FaultProxy.start(endpoint, () => (down ? 'reset' : undefined));
  const credentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
  return {
    name: 's3rver',
    args: ['--store', `s3://${bucket}/${prefix}`, '--s3-endpoint', proxy.endpoint, '--s3-force-path-style', '--s3-checksums', 'when_required', '--s3-region', 'us-east-1'],
    env: { AWS_ACCESS_KEY_ID: credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey },
    async down() {
      down = true;
    },
    async up() {
      down = false;
    },
    async read(key) {
      try {
        const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key: `${prefix}/${key}` }));
        return Buffer.from(await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
      } catch {
        return undefined;
      }
    },
    async block(key) {
      // s3rver keeps an object at `<dir>/<bucket>/<key>._S3rver_object`: a directory there makes
      // every PUT of that key fail (500), as a broken disk under a real server would.
      const parts = `${prefix}/${key}`.split('/');
      const last = parts.pop() as string;
      await mkdir(join(directory, bucket, ...parts, `${last}._S3rver_object`, 'in-the-way'), { recursive: true });
    },
    async close() {
      client.destroy();
      await proxy.close();
      await server.close();
    },
  };
}


export const STORE_FIXTURES: Array<{ name: string; make: (dir: string) => Promise<StoreFixture> }> = [
  { name: 'file', make: fileStoreFixture },
  { name: 's3rver', make: s3rverStoreFixture },
];
