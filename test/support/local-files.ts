/** Local files for store tests: random bytes, Spark-like map outputs, and reading streams back. */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { LocalFile } from '../../agent/store/block-store.js';
import { encodeIndex } from '../../agent/spark/index-file.js';
import { shuffleFileName } from '../../agent/spark/file-names.js';
import { mapOutputId, type MapOutput } from '../../agent/watch/map-output.js';

export async function tempDir(prefix = 'store-test-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** A local file of `size` random bytes. */
export async function randomFile(dir: string, name: string, size: number): Promise<{ file: LocalFile; bytes: Buffer }> {
  const bytes = randomBytes(size);
  const path = join(dir, name);
  await writeFile(path, bytes);
  return { file: { path, size }, bytes };
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

/** A committed map output on disk: random partitions, a data file and an index, as Spark writes them. */
export async function writeMapOutput(
  blockManagerDir: string,
  appId: string,
  shuffleId: number,
  mapId: string,
  partitionSizes: number[],
): Promise<{ output: MapOutput; data: Buffer; index: Buffer }> {
  const offsets = [0];
  for (const s of partitionSizes) offsets.push((offsets[offsets.length - 1] as number) + s);
  const data = randomBytes(offsets[offsets.length - 1] as number);
  const index = encodeIndex(offsets);
  const sub = join(blockManagerDir, '0c');
  await mkdir(sub, { recursive: true });
  const indexPath = join(sub, shuffleFileName(shuffleId, mapId, 'index'));
  const dataPath = join(sub, shuffleFileName(shuffleId, mapId, 'data'));
  await writeFile(indexPath, index);
  const hasData = data.length > 0;
  if (hasData) await writeFile(dataPath, data);
  const output: MapOutput = {
    id: mapOutputId(appId, shuffleId, mapId),
    appId,
    shuffleId,
    mapId,
    blockManagerDir,
    indexPath,
    indexLength: index.length,
    ...(hasData ? { dataPath } : {}),
    dataLength: data.length,
    offsets,
    committedAt: Date.now(),
    foundAtStart: false,
  };
  return { output, data, index };
}
