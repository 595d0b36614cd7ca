/**
 * The two S3 protocol servers the integration tests run against: s3rver in-process on port 0
 * (fast, verifies nothing), and OpenStack Swift's s3api started by scripts/swift-s3.sh (verifies
 * Content-MD5 and signed payloads). Swift is never skipped: when it cannot start, tests fail.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { ROOT } from './repo-root.js';
import { S3Store, type S3StoreOptions } from '../../agent/store/s3/s3-store.js';

const run = promisify(execFile);

export interface S3Server {
  endpoint: string;
  /** s3rver only: its data directory (an object's Last-Modified is its file's mtime there). */
  directory?: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  close(): Promise<void>;
}

/** s3rver on 127.0.0.1, a free port, in a temp dir. */
export async function startS3rver(): Promise<S3Server> {
  const dir = await mkdtemp(join(tmpdir(), 's3rver-'));
  const server = new S3rver({ port: 0, address: '127.0.0.1', directory: dir, silent: true });
  const address = await server.run();
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    directory: dir,
    credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
    close: async () => {
      await server.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Runs scripts/swift-s3.sh with `args` (`start`, `latency MS`) and returns the endpoint it prints
 * last. Idempotent like the script: a running cluster or proxy server is reused.
 */
export async function swiftScript(...args: string[]): Promise<string> {
  const { stdout } = await run('bash', [join(ROOT, 'scripts', 'swift-s3.sh'), ...args], { timeout: 600_000 });
  return stdout.trim().split('\n').pop() ?? '';
}

/** Swift s3api from scripts/swift-s3.sh (idempotent: reuses a running cluster), or SWIFT_S3_ENDPOINT. */
export async function swiftS3(): Promise<S3Server> {
  let endpoint = process.env.SWIFT_S3_ENDPOINT;
  if (!endpoint) {
    try {
      endpoint = await swiftScript('start');
    } catch (err) {
      throw new Error(`Swift s3api could not be started by scripts/swift-s3.sh: ${(err as Error).message}`, { cause: err });
    }
  }
  if (!endpoint || !/^https?:\/\//.test(endpoint)) throw new Error(`no Swift s3api endpoint (got ${JSON.stringify(endpoint)})`);
  return {
    endpoint,
    credentials: {
      accessKeyId: process.env.SWIFT_S3_ACCESS_KEY_ID ?? 'test:tester',
      secretAccessKey: process.env.SWIFT_S3_SECRET_ACCESS_KEY ?? 'testing',
    },
    // A shared cluster: left running for the next test file; `scripts/swift-s3.sh stop` ends it.
    close: async () => undefined,
  };
}

/** A raw SDK client for the server (creating buckets, inspecting what the store wrote). */
export function rawClient(server: S3Server): S3Client {
  return new S3Client({
    endpoint: server.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: server.credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

let bucketSeq = 0;
/** A new bucket with a unique name. */
export async function createBucket(server: S3Server, hint = 'b'): Promise<string> {
  const name = `${hint}-${process.pid}-${Date.now().toString(36)}-${bucketSeq++}`.toLowerCase().slice(0, 63);
  const client = rawClient(server);
  try {
    await client.send(new CreateBucketCommand({ Bucket: name }));
  } finally {
    client.destroy();
  }
  return name;
}

/** An S3Store on `server` with settings for both test servers (path style, WHEN_REQUIRED). */
export function storeOn(server: S3Server, bucket: string, extra: Partial<S3StoreOptions> = {}): S3Store {
  return new S3Store({
    bucket,
    prefix: 'fallback/root',
    endpoint: server.endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials: server.credentials,
    checksums: 'when_required',
    ...extra,
  });
}
