/** FetchShuffleBlock / FetchBlockFileRange over real sockets: bytes, sources, backpressure, errors. */
import { createHash } from 'node:crypto';
import { open, rm, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ShuffleAgentClient } from '../../agent/serve/client.js';
import type { Chunk } from '../../agent/serve/proto.js';
import { startGrpcServer, type RunningGrpcServer } from '../../agent/serve/server.js';
import { FileStore } from '../../agent/store/file-store.js';
import { collect, statusOf } from '../support/grpc-client-helpers.js';
import { until } from '../kit/wait.js';
import { CountingStore, countingHandle, MapLookup, RecordingMetrics, storeOutput, tempDir, writeBigOutput, writeOutput, type WrittenOutput } from '../support/grpc-fixtures.js';

const APP = 'spark-0123456789abcdef0123456789abcdef';

interface Harness {
  server: RunningGrpcServer;
  client: ShuffleAgentClient;
  close: () => Promise<void>;
}

async function harness(lookup: MapLookup, store: FileStore, metrics?: RecordingMetrics, extra: { maxStreams?: number; chunkSize?: number } = {}): Promise<Harness> {
  const server = await startGrpcServer({ lookup, store, ...(metrics ? { metrics } : {}) }, { host: '127.0.0.1', port: 0, ...extra });
  const client = new ShuffleAgentClient({ target: `127.0.0.1:${server.port}` });
  return {
    server,
    client,
    close: async () => {
      client.close();
      await server.close(1000);
    },
  };
}

/** Partition sizes with empty partitions, a partition above the chunk size, and tiny ones. */
function sizesFor(i: number): number[] {
  const n = 1 + (i % 7) * 3;
  return Array.from({ length: n }, (_, p) => ((p * 7919 + i * 104729) % 5 === 0 ? 0 : ((p + 1) * (i + 3) * 977) % 70_000) + (p === 2 && i % 4 === 0 ? 1_500_000 : 0));
}

describe('gRPC fetch: local files', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let h: Harness;
  const outputs: WrittenOutput[] = [];
  const metrics = new RecordingMetrics();
  const lookup = new MapLookup();

  beforeAll(async () => {
    dir = await tempDir('grpc-fetch-');
    // Shuffle 0 / map 0 first: proto3 sends neither id on the wire.
    outputs.push(await writeOutput(join(dir.path, 'local'), APP, 0, '0', [5, 0, 17, 1_200_000, 3]));
    for (let i = 1; i < 24; i++) outputs.push(await writeOutput(join(dir.path, 'local'), APP, i % 3, String(i * 1000 + 7), sizesFor(i)));
    // Every partition empty: Spark writes no data file at all.
    outputs.push(await writeOutput(join(dir.path, 'local'), APP, 4, '9223372036854775807', [0, 0, 0]));
    for (const o of outputs) lookup.add(o.output);
    h = await harness(lookup, new FileStore(join(dir.path, 'store')), metrics);
  });

  afterAll(async () => {
    await h.close();
    await dir.remove();
  });

  it('serves every partition of every output byte for byte, ids 0 included', async () => {
    let partitions = 0;
    for (const { output, data } of outputs) {
      const n = output.offsets.length - 1;
      for (let r = 0; r < n; r++) {
        const got = await h.client.fetchBlock({ app_id: APP, shuffle_id: output.shuffleId, map_id: output.mapId, start_reduce_id: r, end_reduce_id: r + 1 });
        const expected = (data as Buffer).subarray(output.offsets[r], output.offsets[r + 1]);
        expect(got.equals(expected), `${output.id} partition ${r}`).toBe(true);
        partitions++;
      }
      // The whole output as one range, as Spark's batch fetch asks for it.
      const all = await h.client.fetchBlock({ app_id: APP, shuffle_id: output.shuffleId, map_id: output.mapId, start_reduce_id: 0, end_reduce_id: n });
      expect(all.equals(data as Buffer)).toBe(true);
    }
    expect(partitions).toBeGreaterThan(150);
  });

  it('cuts chunks at 1 MiB with offsets within the range, total length on the first chunk', async () => {
    const o = outputs[0] as WrittenOutput;
    const got = await collect(h.client.fetchShuffleBlock({ app_id: APP, shuffle_id: 0, map_id: 0, start_reduce_id: 2, end_reduce_id: 5 }));
    const expected = (o.data as Buffer).subarray(o.output.offsets[2], o.output.offsets[5]);
    expect(got.data.equals(expected)).toBe(true);
    expect(got.chunks.map((c) => c.length)).toEqual([1024 * 1024, expected.length - 1024 * 1024]);
    expect(got.chunks.map((c) => c.offset)).toEqual([0, 1024 * 1024]);
    expect(got.chunks[0]?.total).toBe(expected.length);
    expect(got.chunks.every((c) => c.source === 'BLOCK_SOURCE_LOCAL')).toBe(true);
  });

  it('answers an empty partition with no chunk and OK', async () => {
    const got = await collect(h.client.fetchShuffleBlock({ app_id: APP, shuffle_id: 0, map_id: 0, start_reduce_id: 1, end_reduce_id: 2 }));
    expect(got.chunks).toEqual([]);
    const none = await collect(h.client.fetchShuffleBlock({ app_id: APP, shuffle_id: 4, map_id: '9223372036854775807', start_reduce_id: 0, end_reduce_id: 3 }));
    expect(none.data.length).toBe(0);
  });

  it('serves raw byte ranges of the data and index files', async () => {
    const o = outputs[0] as WrittenOutput;
    const mid = await collect(h.client.fetchBlockFileRange({ app_id: APP, shuffle_id: 0, map_id: '0', file: 'BLOCK_FILE_TYPE_DATA', start: 10, length: 100_000 }));
    expect(mid.data.equals((o.data as Buffer).subarray(10, 100_010))).toBe(true);
    const tail = await collect(h.client.fetchBlockFileRange({ app_id: APP, shuffle_id: 0, map_id: '0', file: 'BLOCK_FILE_TYPE_DATA', start: 1_000_000, length: 0 }));
    expect(tail.data.equals((o.data as Buffer).subarray(1_000_000))).toBe(true);
    const index = await collect(h.client.fetchBlockFileRange({ app_id: APP, shuffle_id: 0, map_id: '0', file: 'BLOCK_FILE_TYPE_INDEX', start: 0, length: 0 }));
    expect(index.data.length).toBe(8 * 6);
    expect(index.data.readBigInt64BE(8 * 5)).toBe(BigInt(o.output.dataLength));
  });

  it('reports fetches by source and bytes in metrics', async () => {
    const before = metrics.fetches.length;
    await h.client.fetchBlock({ app_id: APP, shuffle_id: 0, map_id: 0, start_reduce_id: 3, end_reduce_id: 4 });
    await metrics.idle();
    expect(metrics.fetches.slice(before)).toEqual([{ source: 'local', bytes: 1_200_000 }]);
  });

  it('refuses hostile and malformed requests with INVALID_ARGUMENT', async () => {
    const base = { app_id: APP, shuffle_id: 0, map_id: '0', start_reduce_id: 0, end_reduce_id: 1 };
    const bad = [
      { ...base, app_id: '../x' },
      { ...base, app_id: '' },
      { ...base, app_id: 'a/../../etc' },
      { ...base, shuffle_id: -1 },
      { ...base, map_id: '-1' },
      { ...base, start_reduce_id: -5 },
      { ...base, start_reduce_id: 3, end_reduce_id: 3 },
      { ...base, start_reduce_id: 4, end_reduce_id: 2 },
      { ...base, end_reduce_id: 2147483647 },
      { ...base, end_reduce_id: 6 },
    ];
    for (const req of bad) expect(await statusOf(h.client.fetchBlock(req)), JSON.stringify(req)).toBe('INVALID_ARGUMENT');
    const range = { app_id: APP, shuffle_id: 0, map_id: '0', file: 'BLOCK_FILE_TYPE_DATA' as const, start: 0, length: 0 };
    for (const req of [
      { ...range, start: '9223372036854775807' },
      { ...range, length: '9223372036854775807' },
      { ...range, start: -1 },
      { ...range, start: (outputs[0] as WrittenOutput).output.dataLength + 1 },
      { ...range, file: 'BLOCK_FILE_TYPE_UNSPECIFIED' as const },
    ]) {
      expect(await statusOf(collect(h.client.fetchBlockFileRange(req))), JSON.stringify(req)).toBe('INVALID_ARGUMENT');
    }
  });

  it('answers NOT_FOUND for an unknown app or map output', async () => {
    expect(await statusOf(h.client.fetchBlock({ app_id: 'spark-unknown', shuffle_id: 0, map_id: 0, start_reduce_id: 0, end_reduce_id: 1 }))).toBe('NOT_FOUND');
    expect(await statusOf(h.client.fetchBlock({ app_id: APP, shuffle_id: 0, map_id: 424242, start_reduce_id: 0, end_reduce_id: 1 }))).toBe('NOT_FOUND');
    expect(await statusOf(collect(h.client.fetchBlockFileRange({ app_id: APP, shuffle_id: 9, map_id: 1, file: 'BLOCK_FILE_TYPE_INDEX', start: 0, length: 0 })))).toBe('NOT_FOUND');
    await metrics.idle();
    expect(metrics.errors).toContain('NOT_FOUND');
  });
});

describe('gRPC fetch: after the local files are gone', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  const outputs: WrittenOutput[] = [];
  let store: CountingStore;

  beforeAll(async () => {
    dir = await tempDir('grpc-store-');
    store = new CountingStore(join(dir.path, 'store'));
    for (let i = 0; i < 12; i++) {
      const o = await writeOutput(join(dir.path, 'blockmgr-1', String(i % 4).padStart(2, '0')), APP, i % 2, String(i), sizesFor(i + 5));
      await storeOutput(store, o.output);
      outputs.push(o);
    }
    // The executor stopped: Spark deletes its whole blockmgr tree.
    await rm(join(dir.path, 'blockmgr-1'), { recursive: true });
  });

  afterAll(() => dir.remove());

  it('reads through to the store for outputs the queue still lists (persisted, not local)', async () => {
    const lookup = new MapLookup();
    for (const o of outputs) lookup.add(o.output, 'persisted', false);
    const h = await harness(lookup, store);
    try {
      for (const { output, data } of outputs) {
        for (let r = 0; r < output.offsets.length - 1; r++) {
          const got = await collect(h.client.fetchShuffleBlock({ app_id: APP, shuffle_id: output.shuffleId, map_id: output.mapId, start_reduce_id: r, end_reduce_id: r + 1 }));
          expect(got.data.equals((data as Buffer).subarray(output.offsets[r], output.offsets[r + 1]))).toBe(true);
          expect(got.chunks.every((c) => c.source === 'BLOCK_SOURCE_STORE')).toBe(true);
        }
      }
    } finally {
      await h.close();
    }
  });

  it('reads the stored index first, then the data range, for outputs the queue forgot', async () => {
    const h = await harness(new MapLookup(), store);
    try {
      for (const { output, data } of outputs) {
        const n = output.offsets.length - 1;
        for (let r = 0; r < n; r++) {
          const got = await h.client.fetchBlock({ app_id: APP, shuffle_id: output.shuffleId, map_id: output.mapId, start_reduce_id: r, end_reduce_id: r + 1 });
          expect(got.equals((data as Buffer).subarray(output.offsets[r], output.offsets[r + 1])), `${output.id} ${r}`).toBe(true);
        }
        expect(await statusOf(h.client.fetchBlock({ app_id: APP, shuffle_id: output.shuffleId, map_id: output.mapId, start_reduce_id: 0, end_reduce_id: n + 1 }))).toBe('INVALID_ARGUMENT');
      }
      const raw = await collect(h.client.fetchBlockFileRange({ app_id: APP, shuffle_id: 1, map_id: '1', file: 'BLOCK_FILE_TYPE_DATA', start: 3, length: 50 }));
      expect(raw.data.equals(((outputs[1] as WrittenOutput).data as Buffer).subarray(3, 53))).toBe(true);
    } finally {
      await h.close();
    }
  });

  it('answers UNAVAILABLE only when neither disk nor store can answer', async () => {
    const broken = new CountingStore(join(dir.path, 'store'));
    broken.fail = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    const o = outputs[0] as WrittenOutput;
    // Known to the queue, local file gone, store down.
    const known = await harness(new MapLookup().add(o.output, 'persisted', false), broken);
    // Unknown to the queue, store down.
    const unknown = await harness(new MapLookup(), broken);
    try {
      const req = { app_id: APP, shuffle_id: o.output.shuffleId, map_id: o.output.mapId, start_reduce_id: 0, end_reduce_id: 1 };
      const nonEmpty = o.output.offsets.findIndex((off, i) => (o.output.offsets[i + 1] ?? off) > off);
      expect(await statusOf(known.client.fetchBlock({ ...req, start_reduce_id: nonEmpty, end_reduce_id: nonEmpty + 1 }))).toBe('UNAVAILABLE');
      expect(await statusOf(unknown.client.fetchBlock(req))).toBe('UNAVAILABLE');
      // The store came back: the same requests succeed.
      broken.fail = undefined;
      expect(await statusOf(known.client.fetchBlock({ ...req, start_reduce_id: nonEmpty, end_reduce_id: nonEmpty + 1 }))).toBe('OK');
      expect(await statusOf(unknown.client.fetchBlock(req))).toBe('OK');
    } finally {
      await known.close();
      await unknown.close();
    }
  });
});

describe('gRPC fetch: a 200 MB output, backpressure and cancellation', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let big: WrittenOutput;
  const SIZE = 200 * 1000 * 1000;

  beforeAll(async () => {
    dir = await tempDir('grpc-big-');
    big = await writeBigOutput(join(dir.path, 'local'), APP, 7, '0', SIZE, 10 * 1000 * 1000);
  });

  afterAll(() => dir.remove());

  it('streams 200 MB whole, in order, byte for byte, without piling up listeners', async () => {
    const h = await harness(new MapLookup().add(big.output), new FileStore(join(dir.path, 'store')));
    const warnings: string[] = [];
    const onWarning = (w: Error): void => void warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    try {
      const hash = createHash('sha256');
      let expectedOffset = 0;
      let maxChunk = 0;
      for await (const c of h.client.fetchShuffleBlock({ app_id: APP, shuffle_id: 7, map_id: 0, start_reduce_id: 0, end_reduce_id: 20 }) as AsyncIterable<Chunk>) {
        expect(Number(c.offset)).toBe(expectedOffset);
        expectedOffset += c.data.length;
        maxChunk = Math.max(maxChunk, c.data.length);
        hash.update(c.data);
      }
      expect(expectedOffset).toBe(SIZE);
      expect(maxChunk).toBe(1024 * 1024);
      expect(hash.digest('hex')).toBe(big.sha256);
      // One stall timer per stream, however many chunks it sends (Node warns from 11 listeners).
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings.filter((w) => w.includes('MaxListeners'))).toEqual([]);
    } finally {
      process.off('warning', onWarning);
      await h.close();
    }
  });

  it('stops reading the local file when the client cancels mid-stream', async () => {
    // The file is unlinked and served through a held descriptor, as after Spark's cleanup.
    const handle = await open(big.output.dataPath as string, 'r');
    const index = await open(big.output.indexPath, 'r');
    const read = { bytes: 0 };
    const metrics = new RecordingMetrics();
    const lookup = new MapLookup().add({ ...big.output, dataPath: join(dir.path, 'gone.data') }, 'uploading', false, { data: countingHandle(handle, read), index });
    const h = await harness(lookup, new FileStore(join(dir.path, 'store')), metrics);
    try {
      const controller = new AbortController();
      const stream = h.client.fetchShuffleBlock({ app_id: APP, shuffle_id: 7, map_id: 0, start_reduce_id: 0, end_reduce_id: 20 }, { signal: controller.signal });
      let received = 0;
      const status = statusOf(
        (async () => {
          for await (const c of stream as AsyncIterable<Chunk>) {
            received += c.data.length;
            if (received >= 3 * 1024 * 1024) controller.abort();
          }
        })(),
      );
      expect(await status).toBe('CANCELLED');
      await metrics.idle();
      const atClose = read.bytes;
      // The client's 16 MiB window plus the server's few chunks in flight bound what was read.
      expect(atClose).toBeLessThan(24 * 1024 * 1024);
      expect(atClose).toBeGreaterThanOrEqual(received);
      expect(metrics.errors).toEqual(['CANCELLED']);
      // Nothing of the cancelled stream stays counted in the byte budget.
      await until(async () => h.server.bufferedBytes() === 0, 'budget released after the cancel');
      // Another fetch on the same descriptor proves it is still readable and the count still live.
      await h.client.fetchBlock({ app_id: APP, shuffle_id: 7, map_id: 0, start_reduce_id: 0, end_reduce_id: 1 });
      expect(read.bytes).toBe(atClose + 10 * 1000 * 1000);
    } finally {
      await h.close();
      await handle.close();
      await index.close();
    }
  });

  it('reads only as fast as a stalled client consumes, and stops at the deadline', async () => {
    const store = new CountingStore(join(dir.path, 'store'));
    await storeOutput(store, big.output);
    store.readBytes = 0;
    const metrics = new RecordingMetrics();
    const h = await harness(new MapLookup(), store, metrics);
    // A client with HTTP/2's default 64 KiB window that stops reading after the first chunk.
    const slow = new ShuffleAgentClient({ target: `127.0.0.1:${h.server.port}`, channelOptions: { 'grpc-node.flow_control_window': 65535 } });
    try {
      const stream = slow.fetchShuffleBlock({ app_id: APP, shuffle_id: 7, map_id: 0, start_reduce_id: 0, end_reduce_id: 20 }, { deadline: Date.now() + 1500 });
      const first = await new Promise<Chunk>((resolve) => stream.once('data', resolve));
      stream.pause();
      expect(first.data.length).toBe(1024 * 1024);
      const status = await statusOf(new Promise((resolve, reject) => stream.on('error', reject).on('end', resolve)));
      expect(status).toBe('DEADLINE_EXCEEDED');
      await metrics.idle();
      // Far below the 200 MB asked for: grpc-js's client stream buffers up to 16 messages ahead
      // of the application, then a 64 KiB window and the server's 2-3 chunks in flight.
      expect(store.readBytes).toBeLessThan(22 * 1024 * 1024);
      expect(store.readBytes).toBeGreaterThan(1024 * 1024);
      // The server's timer or the client's reset, whichever comes first, ends it at the deadline.
      expect(metrics.errors).toEqual(['DEADLINE_EXCEEDED']);
    } finally {
      slow.close();
      await h.close();
    }
  });

  it('refuses streams over the limit with RESOURCE_EXHAUSTED and accepts again once one ends', async () => {
    const metrics = new RecordingMetrics();
    const h = await harness(new MapLookup().add(big.output), new FileStore(join(dir.path, 'store')), metrics, { maxStreams: 1 });
    try {
      const controller = new AbortController();
      const first = h.client.fetchShuffleBlock({ app_id: APP, shuffle_id: 7, map_id: 0, start_reduce_id: 0, end_reduce_id: 20 }, { signal: controller.signal });
      await new Promise((resolve) => first.once('data', resolve));
      first.pause();
      expect(h.server.activeStreams()).toBe(1);
      expect(await statusOf(h.client.fetchBlock({ app_id: APP, shuffle_id: 7, map_id: 0, start_reduce_id: 0, end_reduce_id: 1 }))).toBe('RESOURCE_EXHAUSTED');
      first.on('error', () => undefined);
      controller.abort();
      await metrics.idle();
      expect(h.server.activeStreams()).toBe(0);
      const again = await h.client.fetchBlock({ app_id: APP, shuffle_id: 7, map_id: 0, start_reduce_id: 19, end_reduce_id: 20 });
      expect(again.length).toBe(10 * 1000 * 1000);
    } finally {
      await h.close();
    }
  });

  it('switches from a held descriptor closed mid-stream to the store without a gap', async () => {
    const store = new FileStore(join(dir.path, 'store'));
    await storeOutput(store, big.output);
    const handle = await open(big.output.dataPath as string, 'r');
    const index = await open(big.output.indexPath, 'r');
    const lookup = new MapLookup().add({ ...big.output, dataPath: join(dir.path, 'gone.data') }, 'uploading', false, { data: handle, index });
    const h = await harness(lookup, store);
    try {
      const hash = createHash('sha256');
      const sources = new Set<string>();
      let offset = 0;
      for await (const c of h.client.fetchShuffleBlock({ app_id: APP, shuffle_id: 7, map_id: 0, start_reduce_id: 0, end_reduce_id: 5 }) as AsyncIterable<Chunk>) {
        expect(Number(c.offset)).toBe(offset);
        offset += c.data.length;
        hash.update(c.data);
        sources.add(c.source);
        // The write-back finished: the queue releases its descriptor while we stream.
        if (offset >= 8 * 1024 * 1024 && sources.size === 1) await handle.close();
      }
      expect([...sources]).toEqual(['BLOCK_SOURCE_LOCAL', 'BLOCK_SOURCE_STORE']);
      expect(offset).toBe(50 * 1000 * 1000);
      const expected = createHash('sha256');
      const file = await open(big.output.dataPath as string, 'r');
      const buf = Buffer.alloc(50 * 1000 * 1000);
      await file.read(buf, 0, buf.length, 0);
      await file.close();
      expect(hash.digest('hex')).toBe(expected.update(buf).digest('hex'));
    } finally {
      await h.close();
      await index.close();
      await unlink(join(dir.path, 'gone.data')).catch(() => undefined);
    }
  });
});
