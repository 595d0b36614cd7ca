/**
 * A Spark-like executor that commits shuffle map outputs to local dirs exactly the way Spark's
 * IndexShuffleBlockResolver does: spill scratch files, `<name>.<uuid>` attempt files, index
 * renamed into place before data, checksum last, no data file when every partition is empty,
 * and deletions (data, then index, then checksum). Used by tests, the demo and benchmarks.
 */
import { randomUUID, randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { localPlacement } from '../../agent/spark/java-hash.js';
import { encodeIndex } from '../../agent/spark/index-file.js';
import { shuffleFileName } from '../../agent/spark/file-names.js';

export interface CommittedFiles {
  shuffleId: number;
  mapId: string;
  indexPath: string;
  /** Undefined for a data-less output. */
  dataPath?: string;
  offsets: number[];
  data: Buffer;
}

export interface CommitOptions {
  shuffleId: number;
  mapId: number | string;
  /** Partition contents; a number makes random bytes of that length. */
  partitions: ReadonlyArray<Buffer | number>;
  /** Leave a spill file and an unrenamed attempt file behind, as a failed attempt would. */
  leaveDebris?: boolean;
  /** Called between the index rename and the data rename (to observe the half-committed state). */
  betweenRenames?: () => Promise<void> | void;
  checksum?: boolean;
  /**
   * Write the output the way Spark's bypass-merge-sort writer does (up to
   * `spark.shuffle.sort.bypassMergeThreshold` reducers): one `temp_shuffle_*` scratch file per
   * partition, each created, written and deleted, then the attempt file written partition by
   * partition. Each of those calls is an inotify event in a watched directory (issue 19).
   */
  bypassMergeSort?: boolean;
}

export class SparkLikeExecutor {
  readonly blockManagerDirs: string[];
  private readonly made = new Set<string>();

  /** `roots` are the executor's local dirs; a `blockmgr-<uuid>` is made under each, as Spark does. */
  constructor(
    readonly roots: readonly string[],
    id: string = randomUUID(),
  ) {
    this.blockManagerDirs = roots.map((r) => join(r, `blockmgr-${id}`));
  }

  /** Where DiskBlockManager would put `fileName`. */
  async dirFor(fileName: string): Promise<string> {
    const p = localPlacement(fileName, this.roots.length);
    const dir = join(this.blockManagerDirs[p.dirId] as string, p.subDir);
    if (!this.made.has(dir)) {
      // DiskBlockManager creates sub-directories lazily, the first time a file needs one.
      await mkdir(dir, { recursive: true });
      this.made.add(dir);
    }
    return dir;
  }

  async commit(options: CommitOptions): Promise<CommittedFiles> {
    const mapId = String(options.mapId);
    const parts = options.partitions.map((p) => (typeof p === 'number' ? randomBytes(p) : p));
    const offsets = [0];
    for (const p of parts) offsets.push((offsets[offsets.length - 1] as number) + p.length);
    const data = Buffer.concat(parts);
    const dataName = shuffleFileName(options.shuffleId, mapId, 'data');
    const indexName = shuffleFileName(options.shuffleId, mapId, 'index');
    const dataDir = await this.dirFor(dataName);
    const indexDir = await this.dirFor(indexName);

    // The sorter spills to temp_shuffle_* while the task runs, and deletes it after merging.
    const spill = join(await this.dirFor(`temp_shuffle_${randomUUID()}`), `temp_shuffle_${randomUUID()}`);
    await writeFile(spill, data.subarray(0, Math.min(64, data.length)));

    const dataTmp = join(dataDir, `${dataName}.${randomUUID()}`);
    const indexTmp = join(indexDir, `${indexName}.${randomUUID()}`);
    const hasData = data.length > 0;
    if (hasData && options.bypassMergeSort) {
      const scratch: string[] = [];
      for (const part of parts) {
        const name = `temp_shuffle_${randomUUID()}`;
        const path = join(await this.dirFor(name), name);
        await writeFile(path, part);
        scratch.push(path);
      }
      const out = await open(dataTmp, 'w');
      try {
        for (const [i, path] of scratch.entries()) {
          await out.write(parts[i] as Buffer);
          await unlink(path);
        }
      } finally {
        await out.close();
      }
    } else if (hasData) await writeFile(dataTmp, data);
    await writeFile(indexTmp, encodeIndex(offsets));
    if (!options.leaveDebris) await unlink(spill);

    // writeMetadataFileAndCommit: index first, data second, checksum last.
    const indexPath = join(indexDir, indexName);
    const dataPath = join(dataDir, dataName);
    await rename(indexTmp, indexPath);
    await options.betweenRenames?.();
    if (hasData) await rename(dataTmp, dataPath);
    if (options.checksum) {
      const name = `shuffle_${options.shuffleId}_${mapId}_0.checksum.ADLER32`;
      const sums = Buffer.alloc(parts.length * 8);
      await writeFile(join(await this.dirFor(name), name), sums);
    }
    if (options.leaveDebris) {
      await writeFile(join(dataDir, `${dataName}.${randomUUID()}`), randomBytes(32));
    }
    return { shuffleId: options.shuffleId, mapId, indexPath, ...(hasData ? { dataPath } : {}), offsets, data };
  }

  /** removeDataByMap: plain deletes of data, then index, then checksum. */
  async remove(shuffleId: number, mapId: number | string): Promise<void> {
    const id = String(mapId);
    for (const name of [shuffleFileName(shuffleId, id, 'data'), shuffleFileName(shuffleId, id, 'index'), `shuffle_${shuffleId}_${id}_0.checksum.ADLER32`]) {
      await rm(join(await this.dirFor(name), name), { force: true });
    }
  }

  /** Executor stop: Spark deletes its whole `blockmgr-*` tree. */
  async stop(): Promise<void> {
    this.made.clear();
    for (const d of this.blockManagerDirs) await rm(d, { recursive: true, force: true });
  }
}
