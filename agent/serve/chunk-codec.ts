/**
 * A hand-written encoder for `Chunk`, the one message sent in bulk. protobufjs would copy each
 * 1 MiB payload into a fresh buffer before grpc-js copies it again into its frame; here the
 * fields are written into headroom reserved in front of the payload when the reader left some,
 * so the payload is copied once (by grpc-js) on its way to the socket.
 *
 * Wire format (proto3): fields 2, 3, 4 first, then field 1 — any field order is valid protobuf and
 * every decoder accepts it. Zero values are omitted, as proto3 encoders do.
 */
import type { Chunk } from './proto.js';

/** Bytes reserved in front of payloads read by the server: enough for the longest prefix (25). */
export const CHUNK_HEADROOM = 32;

const withHeadroom = new WeakSet<Buffer>();

/** A buffer of `length` bytes with CHUNK_HEADROOM bytes before it that the encoder may use. */
export function allocChunk(length: number): Buffer {
  const backing = Buffer.allocUnsafeSlow(CHUNK_HEADROOM + length);
  const data = backing.subarray(CHUNK_HEADROOM);
  withHeadroom.add(data);
  return data;
}

/**
 * Read buffers of one size, reused: a buffer goes back once grpc-js has copied its payload into
 * its frame (when the write's callback fires), so a long stream does not leave a trail of 1 MiB
 * garbage buffers behind it. A buffer of a cancelled write is simply left to the GC.
 *
 * This relies on grpc-js copying the serialized message into a new frame buffer before the write
 * completes (`serializeMessage` in server-interceptors, 1.10 to 1.14 at least); the byte-for-byte
 * integration tests would catch a version that kept a reference instead.
 */
export class ChunkPool {
  private readonly free: ArrayBuffer[] = [];

  constructor(
    readonly chunkSize: number,
    private readonly maxFree: number,
  ) {}

  /** A buffer of `length` bytes (at most chunkSize) with headroom for the encoder. */
  take(length: number): Buffer {
    // Small reads (one 64 KiB partition) get a buffer of their own size: pinning a pooled 1 MiB
    // buffer for each would make the pool, not the data, the memory cost.
    if (length > this.chunkSize || length < this.chunkSize / 2) return allocChunk(length);
    const backing = this.free.pop() ?? Buffer.allocUnsafeSlow(CHUNK_HEADROOM + this.chunkSize).buffer;
    const data = Buffer.from(backing, CHUNK_HEADROOM, length);
    withHeadroom.add(data);
    return data;
  }

  /** Return a buffer from `take` whose bytes nobody reads any more. */
  give(data: Buffer): void {
    if (data.buffer.byteLength === CHUNK_HEADROOM + this.chunkSize && this.free.length < this.maxFree && withHeadroom.has(data)) {
      withHeadroom.delete(data);
      this.free.push(data.buffer as ArrayBuffer);
    }
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

/** Serialize a Chunk (offsets and lengths must be non-negative safe integers). */
export function encodeChunk(chunk: Chunk): Buffer {
  const data = chunk.data;
  const offset = Number(chunk.offset);
  const total = Number(chunk.total_length);
  const source = SOURCES[chunk.source] ?? 0;
  let prefix = 0;
  if (offset > 0) prefix += 1 + varintLength(offset);
  if (total > 0) prefix += 1 + varintLength(total);
  if (source > 0) prefix += 1 + varintLength(source);
  if (data.length > 0) prefix += 1 + varintLength(data.length);
  let out: Buffer;
  let at = 0;
  if (withHeadroom.has(data) && data.byteOffset >= prefix) {
    out = Buffer.from(data.buffer, data.byteOffset - prefix, prefix + data.length);
  } else {
    out = Buffer.allocUnsafe(prefix + data.length);
    data.copy(out, prefix);
  }
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
