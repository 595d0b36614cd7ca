/**
 * Every file name Spark writes under `blockmgr-*`, parsed into a typed value. The watcher acts on
 * shuffle outputs only; everything else is named so that it can be ignored on purpose.
 */

/** The three files that make up one committed map output. */
export type ShuffleFileType = 'data' | 'index' | 'checksum';

export type SparkFileName =
  | { kind: 'shuffle'; type: 'data' | 'index'; shuffleId: number; mapId: string; reduceId: number }
  | { kind: 'shuffle'; type: 'checksum'; shuffleId: number; mapId: string; reduceId: number; algorithm: string }
  /** `<final name>.<uuid>`: a task attempt's file before Spark renames it into place. */
  | { kind: 'attempt'; finalName: string }
  /** `temp_shuffle_<uuid>` / `temp_local_<uuid>`: spill and sort scratch files. */
  | { kind: 'temp' }
  | { kind: 'rdd'; rddId: number; partition: number }
  | { kind: 'broadcast'; broadcastId: number; piece?: number }
  | { kind: 'taskresult'; taskId: number }
  | { kind: 'unknown' };

const INT_MAX = 2147483647n;
const LONG_MAX = 9223372036854775807n;
const UUID = '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}';

const SHUFFLE = /^shuffle_(\d+)_(\d+)_(\d+)\.(data|index|checksum\.([A-Za-z0-9]+))$/;
const ATTEMPT = new RegExp(`^(.+)\\.(${UUID})$`);
const TEMP = new RegExp(`^temp_(shuffle|local)_${UUID}$`);
const RDD = /^rdd_(\d+)_(\d+)$/;
const BROADCAST = /^broadcast_(\d+)(?:_piece(\d+))?$/;
const TASKRESULT = /^taskresult_(\d+)$/;

/** A canonical non-negative decimal that fits `max` (no leading zeros, which Spark never writes). */
function canonical(digits: string, max: bigint): boolean {
  if (digits.length > 1 && digits.startsWith('0')) return false;
  return BigInt(digits) <= max;
}

/**
 * Whether `name` is one of the sub-directories DiskBlockManager makes under `blockmgr-*`:
 * `"%02x".format(i)` for i in [0, `spark.diskStore.subDirectories`) (64 by default: `00`..`3f`).
 */
export function isSparkSubDir(name: string, subDirectories: number): boolean {
  if (!/^[0-9a-f]{2,8}$/.test(name)) return false;
  const i = Number.parseInt(name, 16);
  return i < subDirectories && i.toString(16).padStart(2, '0') === name;
}

/** Parse a base file name (no directory). Never throws. */
export function parseSparkFileName(name: string): SparkFileName {
  const shuffle = SHUFFLE.exec(name);
  if (shuffle) {
    const [, s, m, r, ext, algorithm] = shuffle as unknown as [string, string, string, string, string, string | undefined];
    if (!canonical(s, INT_MAX) || !canonical(m, LONG_MAX) || !canonical(r, INT_MAX)) return { kind: 'unknown' };
    const base = { kind: 'shuffle' as const, shuffleId: Number(s), mapId: m, reduceId: Number(r) };
    if (algorithm !== undefined) return { ...base, type: 'checksum', algorithm };
    return { ...base, type: ext as 'data' | 'index' };
  }
  if (TEMP.test(name)) return { kind: 'temp' };
  const attempt = ATTEMPT.exec(name);
  if (attempt) return { kind: 'attempt', finalName: attempt[1] as string };
  const rdd = RDD.exec(name);
  if (rdd) return { kind: 'rdd', rddId: Number(rdd[1]), partition: Number(rdd[2]) };
  const broadcast = BROADCAST.exec(name);
  if (broadcast) {
    return broadcast[2] === undefined
      ? { kind: 'broadcast', broadcastId: Number(broadcast[1]) }
      : { kind: 'broadcast', broadcastId: Number(broadcast[1]), piece: Number(broadcast[2]) };
  }
  const task = TASKRESULT.exec(name);
  if (task) return { kind: 'taskresult', taskId: Number(task[1]) };
  return { kind: 'unknown' };
}

/** `shuffle_<shuffleId>_<mapId>_0.<type>`; the reduce id of a sort-shuffle output is always 0. */
export function shuffleFileName(shuffleId: number, mapId: string, type: 'data' | 'index'): string {
  return `shuffle_${shuffleId}_${mapId}_0.${type}`;
}

/** Validates a shuffle id (Java int) and map id (Java long, as a decimal string) from outside. */
export function isValidShuffleId(shuffleId: number): boolean {
  return Number.isInteger(shuffleId) && shuffleId >= 0 && shuffleId <= 2147483647;
}

export function isValidMapId(mapId: string): boolean {
  return /^\d+$/.test(mapId) && canonical(mapId, LONG_MAX);
}
