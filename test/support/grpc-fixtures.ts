/** Map outputs on disk, a lookup over them, counting wrappers and a fake lifecycle for the gRPC tests. */
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter, once } from 'node:events';
import { mkdir, mkdtemp, open, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import type { BlockStore } from '../../agent/store/block-store.js';
import { FileStore } from '../../agent/store/file-store.js';
import { encodeIndex } from '../../agent/spark/index-file.js';
import { fallbackKey, type FallbackLayout } from '../../agent/spark/fallback-key.js';
import { shuffleFileName } from '../../agent/spark/file-names.js';
import { mapOutputId, type MapOutput } from '../../agent/watch/map-output.js';
import type { OutputPhase, OutputView } from '../../agent/writeback/writeback-queue.js';
import type { DrainProgress, LifecycleView, OutputLookup, ServeMetrics, StatusSnapshot } from '../../agent/serve/types.js';

export async function tempDir(prefix: string): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

export interface WrittenOutput {
  output: MapOutput;
  /** The data file's bytes (absent for the 200 MB output: use `sha256`). */
  data?: Buffer;
  sha256: string;
}

/** Write a Spark-like output (index + data) under `dir` with the given partition sizes. */
export async function writeOutput(dir: string, appId: string, shuffleId: number, mapId: string, sizes: readonly number[]): Promise<WrittenOutput> {
  await mkdir(dir, { recursive: true });
  const offsets = [0];
  for (const s of sizes) offsets.push((offsets[offsets.length - 1] as number) + s);
  const total = offsets[offsets.length - 1] as number;
  const indexPath = join(dir, shuffleFileName(shuffleId, mapId, 'index'));
  const data = randomBytes(total);
  let dataPath: string | undefined;
  if (total > 0) {
    dataPath = join(dir, shuffleFileName(shuffleId, mapId, 'data'));
    await writeFile(dataPath, data);
  }
  const index = encodeIndex(offsets);
  await writeFile(indexPath, index);
  return { output: outputOf(appId, shuffleId, mapId, dir, indexPath, index.length, dataPath, offsets), data, sha256: createHash('sha256').update(data).digest('hex') };
}

/**
 * A big output written in 4 MiB blocks, each a shared random block stamped with its own number,
 * so a misplaced or repeated chunk changes the digest. Partitions of `partitionSize` bytes.
 */
export async function writeBigOutput(dir: string, appId: string, shuffleId: number, mapId: string, totalBytes: number, partitionSize: number): Promise<WrittenOutput> {
  await mkdir(dir, { recursive: true });
  const block = randomBytes(4 * 1024 * 1024);
  const dataPath = join(dir, shuffleFileName(shuffleId, mapId, 'data'));
  const hash = createHash('sha256');
  const handle = await open(dataPath, 'w');
  try {
    for (let at = 0, n = 0; at < totalBytes; at += block.length, n++) {
      block.writeUInt32BE(n, 0);
      const piece = block.subarray(0, Math.min(block.length, totalBytes - at));
      hash.update(piece);
      await handle.write(piece);
    }
  } finally {
    await handle.close();
  }
  const offsets: number[] = [];
  for (let o = 0; o < totalBytes; o += partitionSize) offsets.push(o);
  offsets.push(totalBytes);
  const index = encodeIndex(offsets);
  const indexPath = join(dir, shuffleFileName(shuffleId, mapId, 'index'));
  await writeFile(indexPath, index);
  return { output: outputOf(appId, shuffleId, mapId, dir, indexPath, index.length, dataPath, offsets), sha256: hash.digest('hex') };
}

function outputOf(appId: string, shuffleId: number, mapId: string, dir: string, indexPath: string, indexLength: number, dataPath: string | undefined, offsets: number[]): MapOutput {
  return {
    id: mapOutputId(appId, shuffleId, mapId),
    appId,
    shuffleId,
    mapId,
    blockManagerDir: dir,
    indexPath,
    indexLength,
    ...(dataPath !== undefined ? { dataPath } : {}),
    dataLength: offsets[offsets.length - 1] as number,
    offsets,
    committedAt: Date.now(),
    foundAtStart: false,
  };
}

/** Copy an output into a store under Spark's fallback keys (data first, index second). */
export async function storeOutput(store: BlockStore, output: MapOutput, layout: FallbackLayout = 'spark-3.3'): Promise<void> {
  if (output.dataPath !== undefined) {
    await store.put(fallbackKey(output.appId, output.shuffleId, shuffleFileName(output.shuffleId, output.mapId, 'data'), layout), { path: output.dataPath, size: output.dataLength });
  }
  await store.put(fallbackKey(output.appId, output.shuffleId, shuffleFileName(output.shuffleId, output.mapId, 'index'), layout), { path: output.indexPath, size: output.indexLength });
}

/** An OutputLookup over a plain map, as the write-back queue would present it. */
export class MapLookup implements OutputLookup {
  readonly views = new Map<string, OutputView>();

  add(output: MapOutput, phase: OutputPhase = 'queued', local = true, handles?: OutputView['handles']): this {
    this.views.set(output.id, { output, phase, local, ...(handles ? { handles } : {}) });
    return this;
  }

  get(id: string): OutputView | undefined {
    return this.views.get(id);
  }

  list(appId?: string): OutputView[] {
    return [...this.views.values()].filter((v) => appId === undefined || v.output.appId === appId);
  }
}

/** Counts the bytes a FileHandle hands out through `read` (what the server read from disk). */
export function countingHandle(handle: FileHandle, counter: { bytes: number }): FileHandle {
  return new Proxy(handle, {
    get(target, prop, receiver) {
      if (prop === 'read') {
        return async (buffer: Buffer, offset: number, length: number, position: number) => {
          const r = await target.read(buffer, offset, length, position);
          counter.bytes += r.bytesRead;
          return r;
        };
      }
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** A FileStore whose reads are counted (bytes that left the store) and can be made to fail. */
export class CountingStore extends FileStore {
  readBytes = 0;
  fail: Error | undefined;

  override async stat(key: string): ReturnType<FileStore['stat']> {
    if (this.fail) throw this.fail;
    return super.stat(key);
  }

  override async read(key: string, range?: { start: number; end: number }): Promise<Readable> {
    if (this.fail) throw this.fail;
    const inner = await super.read(key, range);
    const count = new Transform({
      transform: (chunk: Buffer, _enc, cb) => {
        this.readBytes += chunk.length;
        cb(null, chunk);
      },
    });
    inner.on('error', (err) => count.destroy(err));
    count.on('close', () => inner.destroy());
    return inner.pipe(count);
  }
}

/** ServeMetrics recorded in memory, with an event when a stream closes. */
export class RecordingMetrics extends EventEmitter<{ closed: [] }> implements ServeMetrics {
  readonly fetches: Array<{ source: string; bytes: number }> = [];
  readonly errors: string[] = [];
  open = 0;

  fetch(source: 'local' | 'store', bytes: number): void {
    this.fetches.push({ source, bytes });
  }

  error(code: string): void {
    this.errors.push(code);
  }

  streamOpened(): void {
    this.open++;
  }

  streamClosed(): void {
    this.open--;
    this.emit('closed');
  }

  /** Resolves once no stream is open. */
  async idle(): Promise<void> {
    while (this.open > 0) await once(this, 'closed');
  }
}

/** A lifecycle driven by the test: `set` changes state; drains complete when the test says so. */
export class FakeLifecycle implements LifecycleView {
  private snapshot: StatusSnapshot = {
    state: 'serving',
    since: 1_700_000_000_000,
    pendingOutputs: 3,
    pendingBytes: 300,
    persistedOutputs: 0,
    persistedBytes: 0,
    failedFiles: 0,
  };
  private readonly listeners = new Set<(s: StatusSnapshot) => void>();
  readonly drainReasons: string[] = [];
  readonly events = new EventEmitter<{ progress: []; subscribed: [] }>();

  status(): StatusSnapshot {
    return { ...this.snapshot };
  }

  get subscribers(): number {
    return this.listeners.size;
  }

  onStateChange(listener: (s: StatusSnapshot) => void): () => void {
    this.listeners.add(listener);
    this.events.emit('subscribed');
    return () => this.listeners.delete(listener);
  }

  set(change: Partial<StatusSnapshot>): void {
    const stateChanged = change.state !== undefined && change.state !== this.snapshot.state;
    this.snapshot = { ...this.snapshot, ...change };
    this.events.emit('progress');
    if (stateChanged) for (const l of this.listeners) l(this.status());
  }

  async *drain(reason: string, signal: AbortSignal): AsyncIterable<DrainProgress> {
    this.drainReasons.push(reason);
    if (this.snapshot.state === 'serving') this.set({ state: 'draining', reason });
    while (!signal.aborted) {
      const done = this.snapshot.state === 'safe_to_exit';
      yield { status: this.status(), done };
      if (done) return;
      await once(this.events, 'progress', { signal }).catch(() => undefined);
    }
  }
}
