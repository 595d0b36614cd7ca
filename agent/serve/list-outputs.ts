/**
 * ListMapOutputs: the outputs of one app the agent knows, from its queue (local, maybe stored too)
 * and from the store (outputs whose local files are gone and that the queue forgot).
 */
import type { BlockStore } from '../store/block-store.js';
import { fallbackKey, type FallbackLayout } from '../spark/fallback-key.js';
import { parseSparkFileName, shuffleFileName } from '../spark/file-names.js';
import { parseIndex } from '../spark/index-file.js';
import { mapOutputId } from '../watch/map-output.js';
import type { OutputView } from '../writeback/writeback-queue.js';
import { describeError } from '../util/errors.js';
import { unavailable } from './errors.js';
import type { MapOutputInfo, OutputLocationName } from './proto.js';
import type { OutputLookup } from './types.js';

/** An index larger than this is not read for a listing (16 MiB = 2M partitions). */
const MAX_INDEX_BYTES = 16 * 1024 * 1024;

export interface ListDeps {
  lookup: OutputLookup;
  store: BlockStore;
  layout: FallbackLayout;
}

export async function* listMapOutputs(deps: ListDeps, appId: string, shuffleIds: readonly number[], signal: AbortSignal): AsyncIterable<MapOutputInfo> {
  const wanted = (shuffleId: number): boolean => shuffleIds.length === 0 || shuffleIds.includes(shuffleId);
  const seen = new Set<string>();
  for (const view of deps.lookup.list(appId)) {
    const o = view.output;
    if (!wanted(o.shuffleId)) continue;
    seen.add(o.id);
    yield info(deps.layout, appId, o.shuffleId, o.mapId, o.offsets, locationOf(view), view.phase);
  }
  const prefixes = shuffleIds.length === 0 ? [`${appId}/`] : [...new Set(shuffleIds)].map((s) => `${appId}/${s}/`);
  for (const prefix of prefixes) {
    try {
      for await (const object of deps.store.list(prefix)) {
        if (signal.aborted) return;
        const name = object.key.slice(object.key.lastIndexOf('/') + 1);
        const parsed = parseSparkFileName(name);
        if (parsed.kind !== 'shuffle' || parsed.type !== 'index' || !wanted(parsed.shuffleId)) continue;
        // Only keys in this agent's layout: anything else in the prefix is not ours to describe.
        if (object.key !== fallbackKey(appId, parsed.shuffleId, name, deps.layout)) continue;
        if (seen.has(mapOutputId(appId, parsed.shuffleId, parsed.mapId))) continue;
        if (object.size > MAX_INDEX_BYTES) continue;
        const offsets = parseIndex(await readAll(deps.store, object.key));
        yield info(deps.layout, appId, parsed.shuffleId, parsed.mapId, offsets, 'OUTPUT_LOCATION_STORED', '');
      }
    } catch (err) {
      throw unavailable(`cannot list the store: ${describeError(err)}`, err);
    }
  }
}

function locationOf(view: OutputView): OutputLocationName {
  if (view.phase !== 'persisted') return 'OUTPUT_LOCATION_LOCAL';
  return view.local ? 'OUTPUT_LOCATION_BOTH' : 'OUTPUT_LOCATION_STORED';
}

function info(
  layout: FallbackLayout,
  appId: string,
  shuffleId: number,
  mapId: string,
  offsets: readonly number[],
  location: OutputLocationName,
  phase: string,
): MapOutputInfo {
  const lengths: string[] = [];
  for (let i = 1; i < offsets.length; i++) lengths.push(String((offsets[i] as number) - (offsets[i - 1] as number)));
  return {
    app_id: appId,
    shuffle_id: shuffleId,
    map_id: mapId,
    partition_lengths: lengths,
    data_length: String(offsets[offsets.length - 1] ?? 0),
    location,
    phase,
    data_key: fallbackKey(appId, shuffleId, shuffleFileName(shuffleId, mapId, 'data'), layout),
    index_key: fallbackKey(appId, shuffleId, shuffleFileName(shuffleId, mapId, 'index'), layout),
  };
}

async function readAll(store: BlockStore, key: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const piece of await store.read(key)) parts.push(piece as Buffer);
  return Buffer.concat(parts);
}
