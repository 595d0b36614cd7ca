import type { FileIdentity } from '../util/safe-file.js';

/** A committed Spark map output as the watcher found it on local disk. */
export interface MapOutput {
  /** `<appId>/<shuffleId>/<mapId>`: unique per app. */
  id: string;
  appId: string;
  /** The Kubernetes namespace of the executor's pod, when the layout names it (`{namespace}`):
   * the tenant that owns `appId` on this node. */
  namespace?: string;
  /** Executor id when the local-dir layout names it (DaemonSet mode), else undefined. */
  executorId?: string;
  shuffleId: number;
  /** Spark's map task attempt id, a Java long, kept as a decimal string. */
  mapId: string;
  /** The `blockmgr-*` directory holding the files. */
  blockManagerDir: string;
  indexPath: string;
  /** The inode the watcher checked; later opens (write-back, serving) must find the same one.
   * Always set by the watcher; without it an open checks only that the file is acceptable. */
  indexFile?: FileIdentity;
  indexLength: number;
  /** Undefined when Spark wrote no data file (every partition empty). */
  dataPath?: string;
  dataFile?: FileIdentity;
  dataLength: number;
  checksumPath?: string;
  /** `numPartitions + 1` offsets into the data file. */
  offsets: number[];
  /** When the watcher saw the output become consistent (ms since epoch). */
  committedAt: number;
  /** True when found by the scan at start rather than seen being committed. */
  foundAtStart: boolean;
}

export function mapOutputId(appId: string, shuffleId: number, mapId: string): string {
  return `${appId}/${shuffleId}/${mapId}`;
}
