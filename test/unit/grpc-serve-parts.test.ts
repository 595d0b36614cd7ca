/** Parts of the gRPC service: the Chunk encoder, the byte budget, request validation, token check, descriptor cache. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { TokenCheck } from '../../agent/serve/auth.js';
import { int64Field, validateIds } from '../../agent/serve/block-source.js';
import { ByteBudget } from '../../agent/util/byte-budget.js';
import { allocChunk, ChunkPool, encodeChunkFrame } from '../../agent/serve/chunk-codec.js';
import { HandleCache } from '../../agent/serve/handle-cache.js';
import { encodeGrpcMessage, frameMessage, parseGrpcTimeout, RequestBody } from '../../agent/serve/grpc-wire.js';
import { parseReduce } from '../../agent/commands/fetch.js';
import { loadProto, type Chunk } from '../../agent/serve/proto.js';

describe('encodeChunkFrame', () => {
  const deserialize = loadProto().service.FetchShuffleBlock?.responseDeserialize as (b: Buffer) => Chunk;
  /** Check the 5-byte gRPC frame header, then decode the message with protobufjs. */
  const decode = (frame: Buffer): Chunk => {
    expect(frame[0]).toBe(0);
    expect(frame.readUInt32BE(1)).toBe(frame.length - 5);
    return deserialize(frame.subarray(5));
  };

  it('decodes with protobufjs to the same message, with and without headroom, at every varint width', () => {
    for (const offset of [0, 1, 127, 128, 16_383, 16_384, 2 ** 31, 2 ** 40 + 5, Number.MAX_SAFE_INTEGER]) {
      for (const source of ['BLOCK_SOURCE_LOCAL', 'BLOCK_SOURCE_STORE', 'BLOCK_SOURCE_UNSPECIFIED'] as const) {
        for (const len of [0, 1, 127, 128, 70_000]) {
          const plain = Buffer.alloc(len, 7);
          const roomy = allocChunk(len).fill(7);
          for (const data of [plain, roomy]) {
            const got = decode(encodeChunkFrame({ data, offset, total_length: offset * 2, source }));
            expect(got.data.equals(plain)).toBe(true);
            expect(got).toMatchObject({ offset: String(offset), total_length: String(offset * 2), source });
          }
        }
      }
    }
  });

  it('writes into the headroom instead of copying the payload', () => {
    const data = allocChunk(1000).fill(1);
    const out = encodeChunkFrame({ data, offset: 5, total_length: 0, source: 'BLOCK_SOURCE_LOCAL' });
    expect(out.buffer).toBe(data.buffer);
    const copied = encodeChunkFrame({ data: Buffer.alloc(1000, 1), offset: 5, total_length: 0, source: 'BLOCK_SOURCE_LOCAL' });
    expect(copied.length).toBe(out.length);
    expect(copied.equals(out)).toBe(true);
  });
});

describe('ByteBudget', () => {
  it('lets a stream holding nothing take a chunk over the limit, and queues the rest first come first served', async () => {
    const budget = new ByteBudget(10);
    const signal = new AbortController().signal;
    const a = budget.lease();
    const b = budget.lease();
    expect(await a.acquire(8, signal)).toBe(true);
    expect(await b.acquire(8, signal)).toBe(true); // b held nothing: always one chunk
    expect(budget.inUse).toBe(16);
    const order: string[] = [];
    const a2 = a.acquire(4, signal).then((ok) => order.push(`a:${ok}`));
    const b2 = b.acquire(1, signal).then((ok) => order.push(`b:${ok}`));
    a.release(8);
    await Promise.resolve();
    expect(order).toEqual([]); // 8 + 4 > 10
    b.release(8);
    await Promise.all([a2, b2]);
    expect(order).toEqual(['a:true', 'b:true']);
    a.close();
    b.close();
    expect(budget.inUse).toBe(0);
  });

  it('gives back on abort and on close, whatever the writes did', async () => {
    const budget = new ByteBudget(4);
    const holder = budget.lease();
    const controller = new AbortController();
    expect(await holder.acquire(4, controller.signal)).toBe(true);
    const waiting = holder.acquire(4, controller.signal);
    controller.abort();
    expect(await waiting).toBe(false);
    holder.close();
    holder.release(4); // late write callback after close: ignored
    expect(budget.inUse).toBe(0);
  });
});

describe('request validation', () => {
  it('accepts ids 0 and the largest ids, refuses negative, fractional and unsafe values', () => {
    expect(validateIds('app-1', 0, '0')).toEqual({ appId: 'app-1', shuffleId: 0, mapId: '0' });
    expect(validateIds('app-1', 2147483647, '9223372036854775807').mapId).toBe('9223372036854775807');
    for (const [a, s, m] of [['../x', 0, '0'], ['', 0, '0'], ['a', -1, '0'], ['a', 1.5, '0'], ['a', 0, '-1'], ['a', 0, '9223372036854775808'], ['a', 0, '01']] as const) {
      expect(() => validateIds(a, s, m), `${a} ${s} ${m}`).toThrow();
    }
    expect(int64Field('start', '0')).toBe(0);
    expect(() => int64Field('start', '-3')).toThrow(/negative/);
    expect(() => int64Field('start', '9007199254740993')).toThrow(/beyond/);
  });

  it('parses --reduce R and R-E (end exclusive)', () => {
    expect(parseReduce('0')).toEqual({ start: 0, end: 1 });
    expect(parseReduce('3-7')).toEqual({ start: 3, end: 7 });
    for (const bad of ['', '-1', '3-3', '4-2', 'x', '1-2-3', '2147483648']) expect(() => parseReduce(bad), bad).toThrow();
  });
});

describe('TokenCheck', () => {
  it('accepts exactly `Bearer <token>`', () => {
    const check = new TokenCheck('t0k');
    expect(() => check.verify('Bearer t0k')).not.toThrow();
    expect(() => check.verify('bearer t0k')).not.toThrow();
    for (const v of [undefined, '', 't0k', 'Bearer', 'Bearer t0', 'Bearer t0kk', 'Basic t0k', ['Bearer t0k', 'Bearer t0k']]) expect(() => check.verify(v), String(v)).toThrow(/bearer token/);
    expect(() => new TokenCheck('')).toThrow();
  });

  it('accepts the previous token for the overlap after a rotation, then only the new one', () => {
    let now = 1000;
    const check = new TokenCheck('old', 60_000, () => now);
    check.rotate('new');
    expect(() => check.verify('Bearer new')).not.toThrow();
    expect(() => check.verify('Bearer old')).not.toThrow();
    expect(() => check.verify('Bearer other')).toThrow(/bearer token/);
    now += 60_000;
    expect(() => check.verify('Bearer old')).toThrow(/bearer token/);
    expect(() => check.verify('Bearer new')).not.toThrow();
    // Rotating to the same token changes nothing; the one before it stays expired.
    check.rotate('new');
    expect(() => check.verify('Bearer old')).toThrow(/bearer token/);
    expect(() => check.rotate('')).toThrow(/empty/);
  });
});

describe('HandleCache', () => {
  it('shares one descriptor per path, closes idle ones over the limit and at close', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'grpc-hc-'));
    try {
      const paths = [0, 1, 2].map((i) => join(dir, `f${i}`));
      for (const [i, p] of paths.entries()) await writeFile(p, `file ${i}`);
      const cache = new HandleCache(2, 60_000);
      const a = await cache.acquire(paths[0] as string);
      const b = await cache.acquire(paths[0] as string);
      expect(a.handle).toBe(b.handle);
      expect(cache.size).toBe(1);
      a.release();
      a.release(); // idempotent
      b.release();
      const again = await cache.acquire(paths[0] as string);
      expect(again.handle).toBe(a.handle); // kept open while idle
      again.release();
      (await cache.acquire(paths[1] as string)).release();
      const third = await cache.acquire(paths[2] as string); // at the limit: idle ones are closed
      expect(cache.size).toBe(1);
      await expect(a.handle.stat()).rejects.toThrow();
      const buf = Buffer.alloc(6);
      await third.handle.read(buf, 0, 6, 0);
      expect(buf.toString()).toBe('file 2');
      await expect(cache.acquire(join(dir, 'missing'))).rejects.toMatchObject({ code: 'ENOENT' });
      expect(cache.size).toBe(1);
      await cache.close();
      expect(cache.size).toBe(1); // still in use
      third.release();
      expect(cache.size).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('gRPC wire helpers', () => {
  it('parses grpc-timeout in every unit and refuses malformed values', () => {
    expect(parseGrpcTimeout(undefined)).toBeUndefined();
    expect(parseGrpcTimeout('2H')).toBe(7_200_000);
    expect(parseGrpcTimeout('3M')).toBe(180_000);
    expect(parseGrpcTimeout('5S')).toBe(5000);
    expect(parseGrpcTimeout('250m')).toBe(250);
    expect(parseGrpcTimeout('1500u')).toBe(1.5);
    expect(parseGrpcTimeout('99999999n')).toBeCloseTo(99.999999);
    for (const bad of ['', '5', 'S', '-5S', '5s', '123456789S', '1.5S', ' 5S', ['5S', '6S']]) expect(() => parseGrpcTimeout(bad), String(bad)).toThrow(/grpc-timeout/);
  });

  it('percent-encodes status messages as the gRPC spec says', () => {
    expect(encodeGrpcMessage('plain text: fine (1/2)')).toBe('plain text: fine (1/2)');
    expect(encodeGrpcMessage('100%')).toBe('100%25');
    expect(encodeGrpcMessage('line\nbreak')).toBe('line%0Abreak');
    expect(encodeGrpcMessage('é')).toBe('%C3%A9');
    expect(decodeURIComponent(encodeGrpcMessage('ünï%cøde\t!'))).toBe('ünï%cøde\t!');
  });

  it('takes exactly one uncompressed message of bounded size', () => {
    const body = (parts: Buffer[], max = 100): Buffer => {
      const b = new RequestBody(max);
      for (const p of parts) b.push(p);
      return b.message();
    };
    const framed = frameMessage(Buffer.from('hello'));
    expect(body([framed]).toString()).toBe('hello');
    expect(body([framed.subarray(0, 2), framed.subarray(2)]).toString()).toBe('hello');
    expect(body([frameMessage(Buffer.alloc(0))]).length).toBe(0);
    expect(() => body([frameMessage(Buffer.alloc(101))])).toThrow(/larger than 100/);
    expect(() => body([framed.subarray(0, 7)])).toThrow(/truncated/);
    expect(() => body([framed, framed])).toThrow(/more than one/);
    expect(() => body([Buffer.from([1, 0, 0, 0, 0])])).toThrow(/compressed/);
  });
});

describe('ChunkPool', () => {
  it('reuses buffers by power-of-two class, within its byte cap, with headroom for the frame', () => {
    const pool = new ChunkPool(1024 * 1024, 3 * 64 * 1024);
    const a = pool.take(65_536);
    const b = pool.take(40_000);
    expect(a.buffer.byteLength - a.byteOffset).toBe(65_536);
    expect(b.buffer.byteLength - b.byteOffset).toBe(65_536);
    expect(pool.take(1_000_000).buffer.byteLength - 32).toBe(1024 * 1024);
    pool.give(a);
    pool.give(b);
    expect(pool.pooled).toBe(2 * 65_536);
    // The same memory comes back for the next read of that class, and a framed encode uses its headroom.
    const c = pool.take(65_000);
    expect(c.buffer).toBe(b.buffer);
    expect(encodeChunkFrame({ data: c, offset: 1, total_length: 0, source: 'BLOCK_SOURCE_LOCAL' }).buffer).toBe(c.buffer);
    // Past the cap, given buffers are left to the GC; a buffer given twice is not pooled twice.
    pool.give(pool.take(65_536));
    pool.give(pool.take(65_536));
    pool.give(pool.take(65_536));
    expect(pool.pooled).toBeLessThanOrEqual(3 * 64 * 1024);
    const fresh = new ChunkPool(1024 * 1024, 1024 * 1024);
    const d = fresh.take(8192);
    fresh.give(d);
    fresh.give(d);
    expect(fresh.pooled).toBe(8192);
    // Tiny and oversized reads are never pooled.
    const tiny = pool.take(100);
    const before = pool.pooled;
    pool.give(tiny);
    expect(pool.pooled).toBe(before);
  });
});
