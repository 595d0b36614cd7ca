/**
 * gRPC's wire format over HTTP/2, the parts a server of single-request RPCs needs: the 5-byte
 * message frame, the `grpc-timeout` header and the percent-encoded `grpc-message` trailer.
 * Reference: grpc/doc/PROTOCOL-HTTP2.md. Pure functions, unit-tested.
 */
import { status } from '@grpc/grpc-js';
import { echo, ServeError } from './errors.js';

/** Compressed-flag byte plus a big-endian uint32 length, in front of every message. */
export const FRAME_HEADER = 5;

/** Frame one serialized message (copies it behind a fresh header). */
export function frameMessage(body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER + body.length);
  out[0] = 0;
  out.writeUInt32BE(body.length, 1);
  body.copy(out, FRAME_HEADER);
  return out;
}

/** Write a frame header for a `length`-byte message at `at` of `buf`. */
export function writeFrameHeader(buf: Buffer, at: number, length: number): void {
  buf[at] = 0;
  buf.writeUInt32BE(length, at + 1);
}

const TIMEOUT_UNITS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };

/**
 * `grpc-timeout` (at most 8 digits and a unit: H M S m u n) in milliseconds; undefined when the
 * header is absent. A malformed value is INVALID_ARGUMENT.
 */
export function parseGrpcTimeout(value: string | string[] | undefined): number | undefined {
  if (value === undefined) return undefined;
  const m = typeof value === 'string' ? /^(\d{1,8})([HMSmun])$/.exec(value) : null;
  if (!m) throw new ServeError(status.INVALID_ARGUMENT, `malformed grpc-timeout ${echo(value)}`);
  return Number(m[1]) * (TIMEOUT_UNITS[m[2] as string] as number);
}

/** Percent-encode a status message: bytes outside 0x20-0x7E, and '%', become %XX (UTF-8). */
export function encodeGrpcMessage(text: string): string {
  if (/^[\x20-\x24\x26-\x7e]*$/.test(text)) return text;
  let out = '';
  for (const byte of Buffer.from(text, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * Collects a request body and checks that it is exactly one uncompressed message of at most
 * `maxBytes`. Throws ServeError with the status to answer.
 */
export class RequestBody {
  private readonly parts: Buffer[] = [];
  private size = 0;

  constructor(private readonly maxBytes: number) {}

  push(piece: Buffer): void {
    this.size += piece.length;
    if (this.size > this.maxBytes + FRAME_HEADER) throw new ServeError(status.RESOURCE_EXHAUSTED, `request larger than ${this.maxBytes} bytes`);
    this.parts.push(piece);
  }

  /** The message bytes, once the client half-closed. */
  message(): Buffer {
    const body = this.parts.length === 1 ? (this.parts[0] as Buffer) : Buffer.concat(this.parts, this.size);
    if (body.length < FRAME_HEADER) throw new ServeError(status.INVALID_ARGUMENT, 'the request carries no message');
    if (body[0] !== 0) {
      // We advertise only identity (grpc-accept-encoding): a compressed request is one we cannot read.
      throw new ServeError(status.UNIMPLEMENTED, 'compressed requests are not supported (grpc-accept-encoding: identity)');
    }
    const length = body.readUInt32BE(1);
    if (length !== body.length - FRAME_HEADER) {
      throw new ServeError(status.INVALID_ARGUMENT, length > body.length - FRAME_HEADER ? 'the request message is truncated' : 'more than one request message');
    }
    return body.subarray(FRAME_HEADER);
  }
}
