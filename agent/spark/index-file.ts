/**
 * Spark's shuffle index and checksum files (IndexShuffleBlockResolver): `numPartitions + 1`
 * big-endian int64 offsets, and `numPartitions` big-endian int64 checksums.
 */

/** Why an index cannot (yet) be taken as a committed output. */
export type IndexProblem =
  | 'empty'
  | 'length-not-multiple-of-8'
  | 'first-offset-not-zero'
  | 'offsets-decreasing'
  | 'offset-too-large'
  | 'data-missing'
  | 'data-length-mismatch';

export class InvalidIndexError extends Error {
  constructor(
    readonly problem: IndexProblem,
    message: string,
  ) {
    super(message);
    this.name = 'InvalidIndexError';
  }
}

/**
 * Parse an index file's bytes into offsets. Throws `InvalidIndexError` for a file Spark could not
 * have committed (truncated, not starting at 0, decreasing).
 */
export function parseIndex(buf: Uint8Array): number[] {
  if (buf.byteLength === 0) throw new InvalidIndexError('empty', 'index file is empty');
  if (buf.byteLength % 8 !== 0 || buf.byteLength < 16) {
    throw new InvalidIndexError('length-not-multiple-of-8', `index length ${buf.byteLength} is not (n+1)*8 with n >= 1`);
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const count = buf.byteLength / 8;
  const offsets = new Array<number>(count);
  let previous = 0;
  for (let i = 0; i < count; i++) {
    const v = view.getBigInt64(i * 8, false);
    if (v < 0n || v > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new InvalidIndexError('offset-too-large', `offset ${i} is ${v}, outside 0..2^53`);
    }
    const n = Number(v);
    if (i === 0 && n !== 0) throw new InvalidIndexError('first-offset-not-zero', `first offset is ${n}, not 0`);
    if (n < previous) throw new InvalidIndexError('offsets-decreasing', `offset ${i} (${n}) is below offset ${i - 1} (${previous})`);
    offsets[i] = n;
    previous = n;
  }
  return offsets;
}

/**
 * Check that offsets and a data file form a committed output: the data file's length equals the
 * last offset; an index of all zeros needs no data file (Spark writes none when every partition
 * is empty). `dataLength` is undefined when no data file exists.
 */
export function checkCommitted(offsets: readonly number[], dataLength: number | undefined): void {
  const last = offsets[offsets.length - 1] ?? 0;
  if (dataLength === undefined) {
    if (last !== 0) throw new InvalidIndexError('data-missing', `index expects ${last} data bytes but there is no data file`);
    return;
  }
  if (dataLength !== last) {
    throw new InvalidIndexError('data-length-mismatch', `data file has ${dataLength} bytes, index expects ${last}`);
  }
}

/** Encode offsets as an index file (used by the Spark-like writer and tests). */
export function encodeIndex(offsets: readonly number[]): Buffer {
  const buf = Buffer.alloc(offsets.length * 8);
  offsets.forEach((o, i) => buf.writeBigInt64BE(BigInt(o), i * 8));
  return buf;
}

/** Byte range `[start, end)` of reduce partitions `[startReduce, endReduce)` in the data file. */
export function partitionRange(offsets: readonly number[], startReduce: number, endReduce: number): { start: number; end: number } {
  const partitions = offsets.length - 1;
  if (!Number.isInteger(startReduce) || !Number.isInteger(endReduce) || startReduce < 0 || endReduce > partitions || startReduce >= endReduce) {
    throw new RangeError(`reduce range [${startReduce}, ${endReduce}) is outside [0, ${partitions})`);
  }
  return { start: offsets[startReduce] as number, end: offsets[endReduce] as number };
}

/** Parse a checksum file: one big-endian int64 per partition (as unsigned decimal strings). */
export function parseChecksums(buf: Uint8Array, expectedPartitions?: number): bigint[] {
  if (buf.byteLength % 8 !== 0) throw new Error(`checksum file length ${buf.byteLength} is not a multiple of 8`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: bigint[] = [];
  for (let i = 0; i < buf.byteLength; i += 8) out.push(view.getBigInt64(i, false));
  if (expectedPartitions !== undefined && out.length !== expectedPartitions) {
    throw new Error(`checksum file has ${out.length} values, index has ${expectedPartitions} partitions`);
  }
  return out;
}
