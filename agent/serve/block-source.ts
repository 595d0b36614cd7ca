/**
 * Turns a request (ids only) into a byte range and the places that can serve it, in order of
 * preference: the descriptor the write-back queue holds, the local file by its path, the store.
 * A request never carries a path: paths come from the watcher's own records, keys from
 * `fallbackKey`, so nothing outside the watched dirs and the store's prefix can be read.
 */
import type { Readable } from 'node:stream';
import type { BlockStore } from '../store/block-store.js';
import { NotFoundError } from '../store/block-store.js';
import { readFd } from '../store/fd-handle.js';
import { fallbackKey, isSafeAppId, type FallbackLayout } from '../spark/fallback-key.js';
import { isValidMapId, isValidShuffleId, shuffleFileName } from '../spark/file-names.js';
import { mapOutputId } from '../watch/map-output.js';
import type { OutputView } from '../writeback/writeback-queue.js';
import { describeError, errorCode } from '../util/errors.js';
import { openChecked, type FileIdentity } from '../util/safe-file.js';
import { allocChunk } from './chunk-codec.js';
import { clip, echo, invalid, notFound, unavailable } from './errors.js';
import type { HandleCache } from './handle-cache.js';
import type { BlockSourceKind, OutputLookup } from './types.js';

/** Reads a range sequentially, at most `max` bytes a call; null at the end of the range. */
export interface ChunkReader {
  /** `alloc` supplies the buffer to read into, when the reader reads into buffers of its own. */
  next(max: number, alloc?: (length: number) => Buffer): Promise<Buffer | null>;
  /** Releases what the reader holds (its own descriptor, the store's stream). Never throws. */
  close(): Promise<void>;
}

/** One place that can serve bytes of a file. `open` rejects with NotFoundError when it has none. */
export interface RangeSource {
  kind: BlockSourceKind;
  /** For logs: the path or key, never sent to clients. */
  describe: string;
  open(start: number, end: number): Promise<ChunkReader>;
}

/** A validated request, resolved to a byte range of one file and the sources able to serve it. */
export interface ResolvedRange {
  start: number;
  end: number;
  sources: RangeSource[];
}

export interface ResolveDeps {
  lookup: OutputLookup;
  store: BlockStore;
  layout: FallbackLayout;
  /** Shared descriptors on local files; without it each read opens the file itself. */
  handles?: HandleCache;
}

export interface OutputIds {
  appId: string;
  shuffleId: number;
  mapId: string;
}

export type BlockFile = 'data' | 'index';

const INT32_MAX = 2147483647;

/** Validate ids from a request. proto-loader gives int64 as strings and int32 as numbers. */
export function validateIds(appId: unknown, shuffleId: unknown, mapId: unknown): OutputIds {
  if (typeof appId !== 'string' || !isSafeAppId(appId)) throw invalid(`app_id ${echo(appId)} is not a Spark application id`);
  if (typeof shuffleId !== 'number' || !isValidShuffleId(shuffleId)) throw invalid(`shuffle_id ${clip(shuffleId)} must be between 0 and ${INT32_MAX}`);
  const map = typeof mapId === 'number' ? String(mapId) : mapId;
  if (typeof map !== 'string' || !isValidMapId(map)) throw invalid(`map_id ${clip(mapId)} must be a non-negative int64`);
  return { appId, shuffleId, mapId: map };
}

/** An int64 field from a request as a safe integer, or INVALID_ARGUMENT. */
export function int64Field(name: string, value: unknown): number {
  const text = typeof value === 'number' ? String(value) : value;
  if (typeof text !== 'string' || !/^-?\d+$/.test(text)) throw invalid(`${name} is not an integer`);
  const big = BigInt(text);
  if (big < 0n) throw invalid(`${name} ${text} is negative`);
  if (big > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid(`${name} ${text} is beyond any file`);
  return Number(big);
}

/** Resolve FetchShuffleBlock: partitions [startReduce, endReduce) of a map output. */
export async function resolvePartitions(deps: ResolveDeps, ids: OutputIds, startReduce: unknown, endReduce: unknown): Promise<ResolvedRange> {
  if (typeof startReduce !== 'number' || typeof endReduce !== 'number' || !Number.isInteger(startReduce) || !Number.isInteger(endReduce)) {
    throw invalid('start_reduce_id and end_reduce_id must be integers');
  }
  if (startReduce < 0 || endReduce < 0) throw invalid(`reduce ids must not be negative (got [${startReduce}, ${endReduce}))`);
  if (startReduce >= endReduce) throw invalid(`empty or reversed reduce range [${startReduce}, ${endReduce})`);
  const view = deps.lookup.get(mapOutputId(ids.appId, ids.shuffleId, ids.mapId));
  if (view) {
    const offsets = view.output.offsets;
    const partitions = offsets.length - 1;
    if (endReduce > partitions) throw invalid(`reduce range [${startReduce}, ${endReduce}) is outside the output's ${partitions} partitions`);
    const start = offsets[startReduce] as number;
    const end = offsets[endReduce] as number;
    return { start, end, sources: sourcesOf(deps, ids, view, 'data') };
  }
  // Not on local disk any more (or never seen here): Spark's FallbackStorage.read, step by step.
  const indexKey = keyOf(deps, ids, 'index');
  const stat = await storeCall(() => deps.store.stat(indexKey), 'stat index');
  if (!stat) throw notFound(`no map output ${mapOutputId(ids.appId, ids.shuffleId, ids.mapId)}`);
  const partitions = Math.floor(stat.size / 8) - 1;
  if (endReduce > partitions) throw invalid(`reduce range [${startReduce}, ${endReduce}) is outside the output's ${partitions} partitions`);
  const [start, end] = await Promise.all([readLong(deps.store, indexKey, startReduce * 8), readLong(deps.store, indexKey, endReduce * 8)]);
  if (end < start) throw unavailable(`stored index ${indexKey} is corrupt (offsets decrease)`);
  return { start, end, sources: [storeSource(deps.store, keyOf(deps, ids, 'data'))] };
}

/** Resolve FetchBlockFileRange: bytes [start, start + length) of one file (length 0: to the end). */
export async function resolveFileRange(deps: ResolveDeps, ids: OutputIds, file: BlockFile, start: number, length: number): Promise<ResolvedRange> {
  const view = deps.lookup.get(mapOutputId(ids.appId, ids.shuffleId, ids.mapId));
  let size: number;
  let sources: RangeSource[];
  if (view) {
    size = file === 'data' ? view.output.dataLength : view.output.indexLength;
    sources = sourcesOf(deps, ids, view, file);
  } else {
    const key = keyOf(deps, ids, file);
    const stat = await storeCall(() => deps.store.stat(key), `stat ${file}`);
    if (!stat) throw notFound(`no ${file} file for map output ${mapOutputId(ids.appId, ids.shuffleId, ids.mapId)}`);
    size = stat.size;
    sources = [storeSource(deps.store, key)];
  }
  const end = length === 0 ? size : start + length;
  if (start > size || end > size) throw invalid(`range [${start}, ${end}) is outside the ${size}-byte ${file} file`);
  return { start, end, sources };
}

export function keyOf(deps: Pick<ResolveDeps, 'layout'>, ids: OutputIds, file: BlockFile): string {
  return fallbackKey(ids.appId, ids.shuffleId, shuffleFileName(ids.shuffleId, ids.mapId, file), deps.layout);
}

/** Held descriptor first (survives Spark unlinking the file), then the path while it exists, then the store. */
function sourcesOf(deps: ResolveDeps, ids: OutputIds, view: OutputView, file: BlockFile): RangeSource[] {
  const sources: RangeSource[] = [];
  const held = file === 'data' ? view.handles?.data : view.handles?.index;
  const path = file === 'data' ? view.output.dataPath : view.output.indexPath;
  if (held) sources.push(heldSource(held, path ?? '(held descriptor)'));
  // Once the watcher saw the file go, a descriptor still cached on it is not used: the output is
  // served from the store, as its location says.
  const identity = file === 'data' ? view.output.dataFile : view.output.indexFile;
  if (path !== undefined && view.local) sources.push(pathSource(path, identity, deps.handles));
  sources.push(storeSource(deps.store, keyOf(deps, ids, file)));
  return sources;
}

function heldSource(handle: PositionalRead, describe: string): RangeSource {
  return {
    kind: 'local',
    describe: `held:${describe}`,
    // The queue owns the descriptor and may close it once the output is persisted: reads then
    // fail with EBADF and the server moves on to the next source.
    open: async (start, end) => new HandleReader(handle, start, end),
  };
}

/** Reopens the tenant's path with the checks of util/safe-file.ts, requiring the inode the watcher
 * checked: a name swapped for a link since then is refused, and the next source (the store) serves. */
function pathSource(path: string, identity: FileIdentity | undefined, cache: HandleCache | undefined): RangeSource {
  return {
    kind: 'local',
    describe: path,
    open: async (start, end) => {
      try {
        if (cache) {
          const cached = await cache.acquire(path, identity);
          return new HandleReader(fdReader(cached.handle.fd), start, end, async () => cached.release());
        }
        const { handle } = await openChecked(path, identity ? { expected: identity } : {});
        return new HandleReader(handle, start, end, () => handle.close());
      } catch (err) {
        if (errorCode(err) === 'ENOENT') throw new NotFoundError(path);
        throw err;
      }
    },
  };
}

function storeSource(store: BlockStore, key: string): RangeSource {
  return {
    kind: 'store',
    describe: key,
    open: async (start, end) => new StreamReader(await store.read(key, { start, end }), end - start),
  };
}

/**
 * Positioned reads on a raw descriptor (fd-handle's `readFd`). Only for descriptors this service
 * owns (the handle cache closes them when no reader holds them), never for the queue's: a number
 * read after someone else closed it could name another file.
 */
function fdReader(fd: number): PositionalRead {
  return { read: (buffer, offset, length, position) => readFd(fd, buffer, offset, length, position) };
}

/** What HandleReader needs of a descriptor; a FileHandle has it. */
export interface PositionalRead {
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
}

/** Positioned reads through a descriptor: nothing is read before the caller asks for it. */
export class HandleReader implements ChunkReader {
  private position: number;

  constructor(
    private readonly handle: PositionalRead,
    start: number,
    private readonly end: number,
    /** Gives the descriptor back (close it, or release it to a cache); none for a borrowed one. */
    private readonly done?: () => Promise<void>,
  ) {
    this.position = start;
  }

  async next(max: number, alloc: (length: number) => Buffer = allocChunk): Promise<Buffer | null> {
    const want = Math.min(max, this.end - this.position);
    if (want <= 0) return null;
    const buf = alloc(want);
    let got = 0;
    while (got < want) {
      const { bytesRead } = await this.handle.read(buf, got, want - got, this.position + got);
      if (bytesRead === 0) throw new Error(`file ended at ${this.position + got}, expected ${this.end} bytes`);
      got += bytesRead;
    }
    this.position += want;
    return buf;
  }

  async close(): Promise<void> {
    await this.done?.().catch(() => undefined);
  }
}

/**
 * A store's stream, re-cut into chunks of at most `max` bytes (coalescing the small pieces an
 * HTTP body arrives in). The stream is pulled only as chunks are asked for, so the store's
 * own buffering bounds what is read ahead.
 */
export class StreamReader implements ChunkReader {
  private readonly iterator: AsyncIterator<Buffer>;
  private leftover: Buffer | undefined;
  private remaining: number;

  constructor(
    private readonly stream: Readable,
    length: number,
  ) {
    this.iterator = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
    this.remaining = length;
  }

  async next(max: number): Promise<Buffer | null> {
    if (this.remaining <= 0) return null;
    const want = Math.min(max, this.remaining);
    const parts: Buffer[] = [];
    let size = 0;
    while (size < want) {
      let piece = this.leftover;
      this.leftover = undefined;
      if (!piece) {
        const r = await this.iterator.next();
        if (r.done) break;
        piece = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value);
      }
      if (size + piece.length > want) {
        this.leftover = piece.subarray(want - size);
        piece = piece.subarray(0, want - size);
      }
      parts.push(piece);
      size += piece.length;
    }
    if (size < want) throw new Error(`stored object ended ${this.remaining - size} bytes early`);
    this.remaining -= size;
    return parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, size);
  }

  async close(): Promise<void> {
    this.stream.destroy();
  }
}

async function readLong(store: BlockStore, key: string, at: number): Promise<number> {
  const stream = await storeCall(() => store.read(key, { start: at, end: at + 8 }), 'read index');
  const reader = new StreamReader(stream, 8);
  try {
    const buf = await reader.next(8);
    const v = (buf as Buffer).readBigInt64BE(0);
    if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`offset ${v} out of range`);
    return Number(v);
  } catch (err) {
    throw unavailable(`stored index ${key} is unreadable: ${describeError(err)}`, err);
  } finally {
    await reader.close();
  }
}

/** A store call: NotFoundError passes through as undefined-ish NOT_FOUND, anything else is UNAVAILABLE. */
async function storeCall<T>(call: () => Promise<T>, what: string): Promise<T> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof NotFoundError) throw notFound(`${what}: ${err.message}`);
    throw unavailable(`store cannot ${what}: ${describeError(err)}`, err);
  }
}
