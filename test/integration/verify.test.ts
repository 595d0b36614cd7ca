/**
 * `verify` re-reads a store and finds what is wrong: a flipped byte (digest), a truncated data
 * object, a missing index, an index that does not parse, an object under the wrong key.
 */
import { cp, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileStore } from '../../agent/store/file-store.js';
import { verifyStore } from '../../agent/store/verify.js';
import { runVerify } from '../../agent/commands/verify.js';
import type { S3Store } from '../../agent/store/s3/s3-store.js';
import { fallbackKey } from '../../agent/spark/fallback-key.js';
import { shuffleFileName } from '../../agent/spark/file-names.js';
import { WritebackQueue } from '../../agent/writeback/writeback-queue.js';
import type { BlockStore } from '../../agent/store/block-store.js';
import { tempDir, writeMapOutput } from '../support/local-files.js';
import { createBucket, rawClient, startS3rver, storeOn, type S3Server } from '../kit/s3-servers.js';

const APP = 'app-verify';
const dataKey = (s: number, m: string): string => fallbackKey(APP, s, shuffleFileName(s, m, 'data'));
const indexKey = (s: number, m: string): string => fallbackKey(APP, s, shuffleFileName(s, m, 'index'));

/** Write-back of five outputs (one with every partition empty, so no data file) into `store`. */
async function populate(store: BlockStore, dir: string): Promise<Map<string, Buffer>> {
  const queue = new WritebackQueue({ store, concurrency: 2 });
  const bytes = new Map<string, Buffer>();
  for (let m = 0; m < 5; m++) {
    const { output, data } = await writeMapOutput(join(dir, 'blockmgr-v'), APP, 0, String(m), m === 4 ? [0, 0, 0] : [1000, 0, 5000 + m]);
    bytes.set(dataKey(0, String(m)), data);
    queue.add(output);
  }
  await queue.whenIdle();
  await queue.close();
  return bytes;
}

describe('verify on S3 (digests in metadata)', () => {
  let server: S3Server;
  let store: S3Store;
  let local: { dir: string; cleanup: () => Promise<void> };
  let bucket: string;
  let original: Map<string, Buffer>;

  beforeAll(async () => {
    server = await startS3rver();
    bucket = await createBucket(server, 'verify');
    store = storeOn(server, bucket);
    local = await tempDir('verify-');
    original = await populate(store, local.dir);
  });
  afterAll(async () => {
    await store?.close();
    await server?.close();
    await local?.cleanup();
  });

  it('passes a store written by the write-back queue', async () => {
    const report = await verifyStore(store, APP);
    expect(report.problems).toEqual([]);
    expect(report.outputs).toBe(5);
    expect(report.okOutputs).toBe(5);
    // Four data objects and five indexes, every one compared with its recorded digest.
    expect(report.digestsChecked).toBe(9);
  });

  it('catches a flipped byte, a truncated data object and a missing index', async () => {
    const raw = rawClient(server);
    // Overwrite an object keeping the digest recorded for the original bytes (single PUTs record MD5).
    const put = async (key: string, body: Buffer, md5: string): Promise<void> => {
      await raw.send(new PutObjectCommand({ Bucket: bucket, Key: store.objectKey(key), Body: body, Metadata: { md5 } }));
    };
    const sha = async (key: string): Promise<string> => ((await store.stat(key))?.digest ?? '').replace(/^\w+:/, '');

    // Bit rot: one byte flipped, metadata as written.
    const flipped = Buffer.from(original.get(dataKey(0, '0')) as Buffer);
    flipped[500] = (flipped[500] as number) ^ 0x20;
    await put(dataKey(0, '0'), flipped, await sha(dataKey(0, '0')));
    // Truncated data object.
    await put(dataKey(0, '1'), (original.get(dataKey(0, '1')) as Buffer).subarray(0, 3000), await sha(dataKey(0, '1')));
    // Index gone.
    await store.delete(indexKey(0, '2'));
    raw.destroy();

    const report = await verifyStore(store, APP);
    const found = report.problems.map((p) => `${p.kind} ${p.key}`).sort();
    expect(found).toEqual(
      [
        `digest-mismatch ${dataKey(0, '0')}`,
        `data-length-mismatch ${dataKey(0, '1')}`,
        `digest-mismatch ${dataKey(0, '1')}`,
        `index-missing ${dataKey(0, '2')}`,
      ].sort(),
    );
    expect(report.okOutputs).toBe(2);
  });
});

describe('verify on a file store, and the command entry point', () => {
  let local: { dir: string; cleanup: () => Promise<void> };
  let root: string;
  const lines: string[] = [];
  const io = { env: {}, out: (s: string) => lines.push(s), err: (s: string) => lines.push(s) };

  beforeAll(async () => {
    local = await tempDir('verify-fs-');
    root = join(local.dir, 'store');
    await populate(new FileStore(root), local.dir);
  });
  afterAll(async () => {
    await local?.cleanup();
  });

  it('exits 0 for an intact store', async () => {
    expect(await runVerify(['--store', `file://${root}`, '--app-id', APP], io)).toBe(0);
    expect(lines.join('\n')).toMatch(/5 map outputs, 5 ok, 0 problem\(s\)[\s\S]*\nOK$/);
  });

  it('exits 1 and names each problem: truncated data, invalid index, missing index, misplaced key', async () => {
    const broken = join(local.dir, 'broken');
    await cp(root, broken, { recursive: true });
    await truncate(join(broken, dataKey(0, '0')), 10);
    await writeFile(join(broken, indexKey(0, '1')), Buffer.alloc(12));
    await rm(join(broken, indexKey(0, '3')));
    await cp(join(broken, indexKey(0, '4')), join(broken, APP, '0', '1', shuffleFileName(0, '4', 'index')));
    lines.length = 0;
    expect(await runVerify(['--store', `file://${broken}`, '--app-id', APP, '--json'], io)).toBe(5);
    const report = JSON.parse(lines.join('\n')) as { problems: Array<{ kind: string; key: string }>; withoutDigest: number };
    expect(report.problems.map((p) => `${p.kind} ${p.key}`).sort()).toEqual(
      [
        `data-length-mismatch ${dataKey(0, '0')}`,
        `index-invalid ${indexKey(0, '1')}`,
        `index-missing ${dataKey(0, '3')}`,
        `misplaced-key ${APP}/0/1/${shuffleFileName(0, '4', 'index')}`,
      ].sort(),
    );
    // A file store keeps no digests: structure only, and the report says so.
    expect(report.withoutDigest).toBeGreaterThan(0);
  });

  it('exits 1 when the app has nothing stored, 2 on usage errors', async () => {
    expect(await runVerify(['--store', `file://${root}`, '--app-id', 'app-none'], io)).toBe(5);
    expect(await runVerify(['--store', `file://${root}`], io)).toBe(2);
    expect(await runVerify(['--store', `file://${root}`, '--app-id', APP, '--bogus'], io)).toBe(2);
  });
});
