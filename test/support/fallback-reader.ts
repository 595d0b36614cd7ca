/**
 * Reads a map output back from a store the way Spark's FallbackStorage.read does: open the index
 * object, read the longs at byte offsets s*8 and e*8, then read that byte range of the data object.
 */
import { buffer } from 'node:stream/consumers';
import type { BlockStore } from '../../agent/store/block-store.js';
import { fallbackKey, type FallbackLayout } from '../../agent/spark/fallback-key.js';
import { shuffleFileName } from '../../agent/spark/file-names.js';

export async function readPartitionsLikeSpark(
  store: BlockStore,
  appId: string,
  shuffleId: number,
  mapId: string,
  startReduce: number,
  endReduce: number,
  layout: FallbackLayout = 'spark-3.3',
): Promise<Buffer> {
  const indexKey = fallbackKey(appId, shuffleId, shuffleFileName(shuffleId, mapId, 'index'), layout);
  const longs = await buffer(await store.read(indexKey, { start: startReduce * 8, end: startReduce * 8 + 8 }));
  const longe = await buffer(await store.read(indexKey, { start: endReduce * 8, end: endReduce * 8 + 8 }));
  const start = Number(longs.readBigInt64BE(0));
  const end = Number(longe.readBigInt64BE(0));
  if (end === start) return Buffer.alloc(0);
  const dataKey = fallbackKey(appId, shuffleId, shuffleFileName(shuffleId, mapId, 'data'), layout);
  return buffer(await store.read(dataKey, { start, end }));
}
