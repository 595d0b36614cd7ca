/** Commit map outputs like Spark and check their stored copies byte for byte. */
import { randomBytes } from 'node:crypto';
import { encodeIndex } from '../../agent/spark/index-file.js';
import { fallbackKey } from '../../agent/spark/fallback-key.js';
import { shuffleFileName } from '../../agent/spark/file-names.js';
import { SparkLikeExecutor } from '../kit/spark-writer.js';
import type { StoreFixture } from '../kit/store-fixtures.js';

export interface Committed {
  id: string;
  shuffleId: number;
  mapId: string;
  data: Buffer;
  index: Buffer;
}

/** Commit `count` outputs of `bytes` each (split over `partitions`), in `shuffles` shuffles. */
export async function commitOutputs(
  executor: SparkLikeExecutor,
  appId: string,
  options: { count: number; bytes: number; partitions?: number; shuffles?: number; firstMapId?: number },
): Promise<Committed[]> {
  const partitions = options.partitions ?? 8;
  const out: Committed[] = [];
  for (let i = 0; i < options.count; i++) {
    const shuffleId = i % (options.shuffles ?? 1);
    const mapId = (options.firstMapId ?? 0) + i;
    const sizes = Array.from({ length: partitions }, (_, p) => Math.floor(options.bytes / partitions) + (p === 0 ? options.bytes % partitions : 0));
    // One random buffer per output: every stored object must match its own bytes.
    const body = randomBytes(options.bytes);
    let at = 0;
    const parts = sizes.map((s) => body.subarray(at, (at += s)));
    const c = await executor.commit({ shuffleId, mapId, partitions: parts });
    out.push({ id: `${appId}/${shuffleId}/${mapId}`, shuffleId, mapId: String(mapId), data: c.data, index: encodeIndex(c.offsets) });
  }
  return out;
}

export function keysOf(appId: string, o: Committed): { data: string; index: string } {
  return {
    data: fallbackKey(appId, o.shuffleId, shuffleFileName(o.shuffleId, o.mapId, 'data')),
    index: fallbackKey(appId, o.shuffleId, shuffleFileName(o.shuffleId, o.mapId, 'index')),
  };
}

/** Whether the store holds the output completely and byte-identical (index and, if any, data). */
export async function storedIntact(store: StoreFixture, appId: string, o: Committed): Promise<boolean> {
  const k = keysOf(appId, o);
  const index = await store.read(k.index);
  if (!index || !index.equals(o.index)) return false;
  if (o.data.length === 0) return true;
  const data = await store.read(k.data);
  return data !== undefined && data.equals(o.data);
}
