import { describe, expect, it } from 'vitest';
import {
  checkCommitted,
  encodeIndex,
  fallbackKey,
  InvalidIndexError,
  isSafeAppId,
  isSparkSubDir,
  javaStringHashCode,
  localPlacement,
  nonNegativeHash,
  parseChecksums,
  parseIndex,
  parseSparkFileName,
  partitionRange,
} from '../../agent/spark/index.js';

describe('java hash', () => {
  it('matches Spark test vectors', () => {
    expect(nonNegativeHash('shuffle_0_7_0.data')).toBe(103417883);
    expect(nonNegativeHash('shuffle_0_7_0.index')).toBe(1094002679);
    expect(nonNegativeHash('shuffle_0_0_0.index')).toBe(861282032);
    expect(localPlacement('shuffle_0_7_0.data', 1).subDir).toBe('1b');
    expect(localPlacement('shuffle_0_7_0.index', 1).subDir).toBe('37');
    expect(localPlacement('shuffle_0_0_0.index', 1).subDir).toBe('30');
  });

  it('wraps like Java int arithmetic and handles UTF-16 units', () => {
    expect(javaStringHashCode('')).toBe(0);
    expect(javaStringHashCode('a')).toBe(97);
    // "polygenelubricants".hashCode() == Integer.MIN_VALUE in Java.
    expect(javaStringHashCode('polygenelubricants')).toBe(-2147483648);
    expect(nonNegativeHash('polygenelubricants')).toBe(0);
    // A surrogate pair counts as two code units: 31*0xD83D + 0xDE00.
    expect(javaStringHashCode('\u{1F600}')).toBe(31 * 0xd83d + 0xde00);
    expect(nonNegativeHash('Aa')).toBe(nonNegativeHash('BB'));
  });

  it('spreads files over several roots like DiskBlockManager', () => {
    const h = nonNegativeHash('shuffle_0_7_0.data');
    const p = localPlacement('shuffle_0_7_0.data', 3);
    expect(p.dirId).toBe(h % 3);
    expect(p.subDir).toBe((Math.floor(h / 3) % 64).toString(16).padStart(2, '0'));
    expect(() => localPlacement('x', 0)).toThrow(RangeError);
  });
});

describe('file names', () => {
  it('parses shuffle files', () => {
    expect(parseSparkFileName('shuffle_3_17_0.data')).toEqual({ kind: 'shuffle', type: 'data', shuffleId: 3, mapId: '17', reduceId: 0 });
    expect(parseSparkFileName('shuffle_0_0_0.index')).toEqual({ kind: 'shuffle', type: 'index', shuffleId: 0, mapId: '0', reduceId: 0 });
    expect(parseSparkFileName('shuffle_1_9223372036854775807_0.index')).toMatchObject({ mapId: '9223372036854775807' });
    expect(parseSparkFileName('shuffle_2_5_0.checksum.ADLER32')).toEqual({
      kind: 'shuffle',
      type: 'checksum',
      shuffleId: 2,
      mapId: '5',
      reduceId: 0,
      algorithm: 'ADLER32',
    });
  });

  it('recognises attempt, temp and other block files', () => {
    const uuid = '0b5c5f9e-2f7d-4d69-9a39-3b1c2c1f0e11';
    expect(parseSparkFileName(`shuffle_0_7_0.data.${uuid}`)).toEqual({ kind: 'attempt', finalName: 'shuffle_0_7_0.data' });
    expect(parseSparkFileName(`shuffle_0_7_0.checksum.CRC32C.${uuid}`)).toEqual({ kind: 'attempt', finalName: 'shuffle_0_7_0.checksum.CRC32C' });
    expect(parseSparkFileName(`temp_shuffle_${uuid}`)).toEqual({ kind: 'temp' });
    expect(parseSparkFileName(`temp_local_${uuid}`)).toEqual({ kind: 'temp' });
    expect(parseSparkFileName('rdd_4_12')).toEqual({ kind: 'rdd', rddId: 4, partition: 12 });
    expect(parseSparkFileName('broadcast_3')).toEqual({ kind: 'broadcast', broadcastId: 3 });
    expect(parseSparkFileName('broadcast_3_piece0')).toEqual({ kind: 'broadcast', broadcastId: 3, piece: 0 });
    expect(parseSparkFileName('taskresult_77')).toEqual({ kind: 'taskresult', taskId: 77 });
  });

  it('rejects names Spark never writes', () => {
    for (const n of ['shuffle_01_7_0.data', 'shuffle_2147483648_1_0.data', 'shuffle_1_9223372036854775808_0.index', 'shuffle_1_2.data', 'shuffle_a_1_0.data', '.nfs000', 'shuffle_1_2_0.index.tmp']) {
      expect(parseSparkFileName(n), n).toEqual({ kind: 'unknown' });
    }
  });
});

describe('index files', () => {
  it('round-trips and finds partition ranges', () => {
    const offsets = [0, 10, 10, 25];
    const parsed = parseIndex(encodeIndex(offsets));
    expect(parsed).toEqual(offsets);
    expect(partitionRange(parsed, 0, 1)).toEqual({ start: 0, end: 10 });
    expect(partitionRange(parsed, 1, 3)).toEqual({ start: 10, end: 25 });
    expect(() => partitionRange(parsed, 2, 4)).toThrow(RangeError);
    expect(() => partitionRange(parsed, 2, 2)).toThrow(RangeError);
  });

  it('refuses what Spark could not have committed', () => {
    const problem = (buf: Uint8Array): string => {
      try {
        parseIndex(buf);
        return 'ok';
      } catch (err) {
        return (err as InvalidIndexError).problem;
      }
    };
    expect(problem(Buffer.alloc(0))).toBe('empty');
    expect(problem(encodeIndex([0, 5]).subarray(0, 12))).toBe('length-not-multiple-of-8');
    expect(problem(Buffer.alloc(8))).toBe('length-not-multiple-of-8');
    expect(problem(encodeIndex([1, 5]))).toBe('first-offset-not-zero');
    expect(problem(encodeIndex([0, 5, 4]))).toBe('offsets-decreasing');
    expect(problem(encodeIndex([0, -1]))).toBe('offset-too-large');
  });

  it('checks the data length against the last offset', () => {
    expect(() => checkCommitted([0, 10], 10)).not.toThrow();
    expect(() => checkCommitted([0, 0, 0], undefined)).not.toThrow();
    expect(() => checkCommitted([0, 0], 0)).not.toThrow();
    expect(() => checkCommitted([0, 10], undefined)).toThrow(/no data file/);
    expect(() => checkCommitted([0, 10], 9)).toThrow(/9 bytes/);
  });

  it('parses checksum files', () => {
    const buf = Buffer.alloc(16);
    buf.writeBigInt64BE(42n, 0);
    buf.writeBigInt64BE(-1n, 8);
    expect(parseChecksums(buf, 2)).toEqual([42n, -1n]);
    expect(() => parseChecksums(buf, 3)).toThrow(/3 partitions/);
    expect(() => parseChecksums(buf.subarray(0, 9))).toThrow(/multiple of 8/);
  });
});

describe('fallback keys', () => {
  it('uses the Spark 3.3+ layout by default', () => {
    expect(fallbackKey('app-1', 0, 'shuffle_0_7_0.data')).toBe('app-1/0/103417883/shuffle_0_7_0.data');
    expect(fallbackKey('app-1', 0, 'shuffle_0_7_0.index', 'spark-3.1')).toBe('app-1/0/shuffle_0_7_0.index');
  });

  it('refuses app ids that could escape the prefix', () => {
    for (const bad of ['', '..', '../x', 'a/b', '.hidden', 'a..b']) expect(isSafeAppId(bad), bad).toBe(false);
    expect(isSafeAppId('spark-0123456789abcdef0123456789abcdef')).toBe(true);
    expect(() => fallbackKey('../etc', 0, 'x')).toThrow(RangeError);
  });
});

describe('isSparkSubDir', () => {
  it("accepts exactly DiskBlockManager's names: %02x of 0 .. subDirectories - 1", () => {
    expect(['00', '09', '0a', '3f'].every((n) => isSparkSubDir(n, 64))).toBe(true);
    // Beyond the count, upper case, not zero-padded as %02x pads, padded further, not hex.
    for (const n of ['40', 'ff', '0A', '0', '000', '0000', '4e1f', 'zz', '', '-1']) expect(isSparkSubDir(n, 64), n).toBe(false);
    expect(isSparkSubDir('ff', 256)).toBe(true);
    expect(isSparkSubDir('100', 257)).toBe(true);
    expect(isSparkSubDir('100', 256)).toBe(false);
  });
});
