/**
 * A hand-written encoder for `Chunk`, the one message sent in bulk. protobufjs would copy each
 * 1 MiB payload into a fresh buffer, and framing it would copy it again; here the gRPC frame
 * header and the fields are written into headroom reserved in front of the payload when the
 * reader left some, so the payload goes to the socket without being copied in JavaScript.
 *
 * Wire format (proto3): fields 2, 3, 4 first, then field 1 — any field order is valid protobuf and
 * every decoder accepts it. Zero values are omitted, as proto3 encoders do.
 */
import { FRAME_HEADER, writeFrameHeader } from './grpc-wire.js';
import type { Chunk } from './proto.js';

/**
 * Bytes reserved in front of payloads read by the server: enough for the gRPC frame header (5)
 * and the longest protobuf prefix (25).
 */
export const CHUNK_HEADROOM = 32;

const withHeadroom = new WeakSet<Buffer>();

/** A buffer of `length` bytes with CHUNK_HEADROOM bytes before it that the encoder may use. */
export function allocChunk(length: number): Buffer {
  const backing = Buffer.allocUnsafeSlow(CHUNK_HEADROOM + length);
  const data = backing.subarray(CHUNK_HEADROOM);
  withHeadroom.add(data);
  return data;
}

/** Reads smaller than this get a buffer of their own (pooling them saves nothing). */
const MIN_POOLED = 4096;

/**
 * Read buffers, reused: a buffer goes back once the socket has taken its bytes (when the write's
 * callback reports success), so a stream does not leave a trail of garbage buffers behind it and
 * small fetches do not make the GC run for them. Buffers come in power-of-two size classes up to
 * the chunk size, so a 64 KiB partition pins 64 KiB, not a whole chunk; the free lists together
 * hold at most `maxPooledBytes`. A buffer of a failed or cancelled write is left to the GC.
 *
 * This relies on Node's HTTP/2 completing a stream write only after the socket write of its data
 * (`Http2Session::ClearOutgoing`, Node 20); the byte-for-byte integration tests would catch a
 * version that completed it earlier.
 */
export class ChunkPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private pooledBytes = 0;

  constructor(
    readonly chunkSize: number,
    private readonly maxPooledBytes: number,
  ) {}

  /** A buffer of `length` bytes (at most chunkSize) with headroom for the encoder. */
  take(length: number): Buffer {
    if (length > this.chunkSize || length < MIN_POOLED) return allocChunk(length);
    const size = this.classOf(length);
    let backing = this.free.get(size)?.pop();
    if (backing) this.pooledBytes -= size;
    else backing = Buffer.allocUnsafeSlow(CHUNK_HEADROOM + size).buffer as ArrayBuffer;
    const data = Buffer.from(backing, CHUNK_HEADROOM, length);
    withHeadroom.add(data);
    return data;
  }

  /** Return a buffer from `take` whose bytes nobody reads any more. */
  give(data: Buffer): void {
    if (!withHeadroom.has(data)) return;
    const size = data.buffer.byteLength - CHUNK_HEADROOM;
    if (size < MIN_POOLED || size > this.chunkSize || this.classOf(size) !== size || this.pooledBytes + size > this.maxPooledBytes) return;
    withHeadroom.delete(data);
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push(data.buffer as ArrayBuffer);
    this.pooledBytes += size;
  }

  /** Bytes held in the free lists. */
  get pooled(): number {
    return this.pooledBytes;
  }

  /** The next power of two at or above `length`, capped at the chunk size. */
  private classOf(length: number): number {
    return Math.min(this.chunkSize, 2 ** Math.ceil(Math.log2(length)));
  }
}

const SOURCES: Record<string, number> = { BLOCK_SOURCE_UNSPECIFIED: 0, BLOCK_SOURCE_LOCAL: 1, BLOCK_SOURCE_STORE: 2 };

function varintLength(v: number): number {
  let n = 1;
  while (v >= 128) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

function writeVarint(buf: Buffer, at: number, v: number): number {
  while (v >= 128) {
    buf[at++] = (v % 128) | 128;
    v = Math.floor(v / 128);
  }
  buf[at++] = v;
  return at;
}

/**
 * A Chunk as one gRPC message frame (header + protobuf), in the payload's headroom when it has
 * some. Offsets and lengths must be non-negative safe integers.
 */
export function encodeChunkFrame(chunk: Chunk): Buffer {
  const data = chunk.data;
  const offset = Number(chunk.offset);
  const total = Number(chunk.total_length);
  const source = SOURCES[chunk.source] ?? 0;
  let prefix = 0;
  if (offset > 0) prefix += 1 + varintLength(offset);
  if (total > 0) prefix += 1 + varintLength(total);
  if (source > 0) prefix += 1 + varintLength(source);
  if (data.length > 0) prefix += 1 + varintLength(data.length);
  const front = FRAME_HEADER + prefix;
  let out: Buffer;
  if (withHeadroom.has(data) && data.byteOffset >= front) {
    out = Buffer.from(data.buffer, data.byteOffset - front, front + data.length);
  } else {
    out = Buffer.allocUnsafe(front + data.length);
    data.copy(out, front);
  }
  writeFrameHeader(out, 0, prefix + data.length);
  let at = FRAME_HEADER;
  const field = (tag: number, value: number): void => {
    out[at] = tag;
    at = writeVarint(out, at + 1, value);
  };
  // Tags: (field number << 3) | wire type; varint = 0, length-delimited = 2.
  if (offset > 0) field(0x10, offset);
  if (total > 0) field(0x18, total);
  if (source > 0) field(0x20, source);
  if (data.length > 0) field(0x0a, data.length);
  return out;
}
