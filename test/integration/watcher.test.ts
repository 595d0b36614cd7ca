import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { closeSync, openSync, readFileSync, renameSync } from 'node:fs';
import { shuffleFileName } from '../../agent/spark/file-names.js';
import { join } from 'node:path';
import { LocalDirWatcher, type RemovedOutput, type WatchProblem } from '../../agent/watch/local-dir-watcher.js';
import type { MapOutput } from '../../agent/watch/map-output.js';
import { encodeIndex } from '../../agent/spark/index-file.js';
import { SparkLikeExecutor } from '../kit/spark-writer.js';
import { tempDir } from '../kit/temp-dir.js';
import { waitFor } from '../kit/wait.js';
import { FILE_EVENT_BACKENDS } from '../kit/file-events.js';

describe.each(FILE_EVENT_BACKENDS)('LocalDirWatcher, NN directories by $name', (backend) => {
  let root: string;
  let cleanup: () => Promise<void>;
  let watcher: LocalDirWatcher | undefined;
  const committed: MapOutput[] = [];
  const removed: RemovedOutput[] = [];
  const problems: WatchProblem[] = [];

  beforeEach(async () => {
    ({ path: root, cleanup } = await tempDir('ssa-watch-'));
    committed.length = 0;
    removed.length = 0;
    problems.length = 0;
  });

  afterEach(async () => {
    await watcher?.close();
    watcher = undefined;
    await cleanup();
  });

  async function startWatcher(extra: Partial<ConstructorParameters<typeof LocalDirWatcher>[0]> = {}): Promise<LocalDirWatcher> {
    const w = new LocalDirWatcher({ inotifywait: backend.inotifywait(), localDirs: [root], defaultAppId: 'app-1', removalSettleMs: 50, rescanIntervalMs: 0, ...extra });
    w.on('committed', (o) => committed.push(o));
    w.on('removed', (r) => removed.push(r));
    w.on('problem', (p) => problems.push(p));
    watcher = w;
    await w.start();
    return w;
  }

  it('reports an output only once index and data are consistent, once', async () => {
    const w = await startWatcher();
    const exec = new SparkLikeExecutor([root]);
    let seenBetween = -1;
    const event = waitFor<[MapOutput]>(w, 'committed');
    const files = await exec.commit({
      shuffleId: 0,
      mapId: 7,
      partitions: [100, 0, 50],
      leaveDebris: true,
      checksum: true,
      betweenRenames: async () => {
        // Index in place, data not yet: let the watcher see the half state.
        await w.rescan();
        seenBetween = committed.length;
      },
    });
    const [output] = await event;
    expect(seenBetween).toBe(0);
    expect(output).toMatchObject({
      id: 'app-1/0/7',
      appId: 'app-1',
      shuffleId: 0,
      mapId: '7',
      indexPath: files.indexPath,
      dataPath: files.dataPath,
      dataLength: 150,
      indexLength: 32,
      offsets: [0, 100, 100, 150],
      foundAtStart: false,
    });
    await w.rescan();
    expect(committed).toHaveLength(1);
    expect(problems).toEqual([]);
  });

  it("takes in outputs written by Spark's bypass-merge-sort writer (a scratch file per partition) once each, the scratch files never", async () => {
    const w = await startWatcher();
    const exec = new SparkLikeExecutor([root]);
    const partitions = Array.from({ length: 50 }, (_, i) => 100 + i);
    const expected = partitions.reduce((a, b) => a + b, 0);
    for (let m = 0; m < 4; m++) {
      const event = waitFor<[MapOutput]>(w, 'committed');
      await exec.commit({ shuffleId: 2, mapId: m, partitions, bypassMergeSort: true });
      const [output] = await event;
      expect(output).toMatchObject({ id: `app-1/2/${m}`, dataLength: expected, foundAtStart: false });
    }
    await w.rescan();
    expect(committed.map((o) => o.mapId)).toEqual(['0', '1', '2', '3']);
    expect(problems).toEqual([]);
  });

  it('accepts a data-less output (every partition empty)', async () => {
    const w = await startWatcher();
    const exec = new SparkLikeExecutor([root]);
    const event = waitFor<[MapOutput]>(w, 'committed');
    await exec.commit({ shuffleId: 3, mapId: 0, partitions: [0, 0, 0, 0] });
    const [output] = await event;
    expect(output.dataPath).toBeUndefined();
    expect(output.dataLength).toBe(0);
    expect(output.offsets).toEqual([0, 0, 0, 0, 0]);
  });

  it('finds outputs already on disk at start, across several roots and layouts', async () => {
    const second = join(root, 'second');
    const first = join(root, 'first');
    const exec = new SparkLikeExecutor([first, second]);
    for (let m = 0; m < 20; m++) await exec.commit({ shuffleId: 1, mapId: m, partitions: [10, 20] });
    await startWatcher({ localDirs: [first, second] });
    expect(committed.map((o) => o.mapId).sort((a, b) => Number(a) - Number(b))).toEqual(Array.from({ length: 20 }, (_, i) => String(i)));
    expect(committed.every((o) => o.foundAtStart)).toBe(true);
  });

  it('takes app and executor ids from a DaemonSet layout', async () => {
    const w = await startWatcher({ layout: '{appId}/{executorId}' });
    const event = waitFor<[MapOutput]>(w, 'committed');
    await new SparkLikeExecutor([join(root, 'spark-app-a', '2')]).commit({ shuffleId: 0, mapId: 1, partitions: [5] });
    const [output] = await event;
    expect(output).toMatchObject({ id: 'spark-app-a/0/1', appId: 'spark-app-a', executorId: '2' });
    // A directory that does not fit the layout's app id is not watched.
    await new SparkLikeExecutor([join(root, '..bad', '1')]).commit({ shuffleId: 0, mapId: 2, partitions: [5] });
    await w.rescan();
    expect(committed).toHaveLength(1);
  });

  it('finds a data file whose event was lost (inotify queue overflow) where Spark puts it', async () => {
    const w = await startWatcher({ incompleteGraceMs: 100 });
    const exec = new SparkLikeExecutor([root]);
    const dataName = shuffleFileName(6, '1', 'data');
    const indexName = shuffleFileName(6, '1', 'index');
    const dataDir = await exec.dirFor(dataName);
    const indexDir = await exec.dirFor(indexName);
    const data = Buffer.alloc(100, 7);
    await writeFile(join(dataDir, `${dataName}.tmp`), data);
    await writeFile(join(indexDir, `${indexName}.tmp`), encodeIndex([0, 40, 100]));
    const event = waitFor<[MapOutput]>(w, 'committed');
    await rename(join(indexDir, `${indexName}.tmp`), join(indexDir, indexName));
    // Without yielding to the event loop: overflow the kernel's inotify queue (16,384 events by
    // default) with irrelevant files, then commit the data file. Its event is dropped by the
    // kernel; only the index's arrives.
    const limit = Number(readFileSync('/proc/sys/fs/inotify/max_queued_events', 'utf8'));
    for (let i = 0; i < limit + 100; i++) closeSync(openSync(join(dataDir, `temp_shuffle_flood_${i}`), 'w'));
    renameSync(join(dataDir, `${dataName}.tmp`), join(dataDir, dataName));
    const [output] = await event;
    expect(output).toMatchObject({ id: 'app-1/6/1', dataPath: join(dataDir, dataName), dataLength: 100 });
    expect(problems).toEqual([]);
  });

  it('tells a shuffle cleanup from the executor stopping', async () => {
    const w = await startWatcher();
    const exec = new SparkLikeExecutor([root]);
    for (const m of [1, 2]) {
      const e = waitFor(w, 'committed');
      await exec.commit({ shuffleId: 0, mapId: m, partitions: [10] });
      await e;
    }
    let gone = waitFor<[RemovedOutput]>(w, 'removed');
    await exec.remove(0, 1);
    const [cleanup1] = await gone;
    expect(cleanup1.output.mapId).toBe('1');
    expect(cleanup1.blockManagerDirGone).toBe(false);
    gone = waitFor<[RemovedOutput]>(w, 'removed');
    await exec.stop();
    const [stopped] = await gone;
    expect(stopped.output.mapId).toBe('2');
    expect(stopped.blockManagerDirGone).toBe(true);
    expect(w.outputs()).toEqual([]);
  });

  it('re-reads an index that changes', async () => {
    const w = await startWatcher();
    const exec = new SparkLikeExecutor([root]);
    let e = waitFor<[MapOutput]>(w, 'committed');
    const files = await exec.commit({ shuffleId: 0, mapId: 4, partitions: [10, 10] });
    await e;
    e = waitFor<[MapOutput]>(w, 'committed');
    // A later attempt replaces the pair (Spark overwrites an inconsistent one), by renames as
    // Spark does: data first here.
    await writeFile(`${files.dataPath as string}.attempt`, Buffer.alloc(30));
    await rename(`${files.dataPath as string}.attempt`, files.dataPath as string);
    await writeFile(`${files.indexPath}.attempt`, encodeIndex([0, 5, 30]));
    await rename(`${files.indexPath}.attempt`, files.indexPath);
    const [changed] = await e;
    expect(changed.offsets).toEqual([0, 5, 30]);
    expect(changed.dataLength).toBe(30);
  });

  it('reports a truncated index and an index whose data never matches, then recovers', async () => {
    const w = await startWatcher({ incompleteGraceMs: 100 });
    const exec = new SparkLikeExecutor([root]);
    const dir = await exec.dirFor('shuffle_5_1_0.index');
    let p = waitFor<[WatchProblem]>(w, 'problem');
    await writeFile(join(dir, 'shuffle_5_1_0.index'), encodeIndex([0, 10]).subarray(0, 12));
    const [truncated] = await p;
    expect(truncated.kind).toBe('length-not-multiple-of-8');
    expect(truncated.path).toContain('shuffle_5_1_0.index');

    const dataDir = await exec.dirFor('shuffle_5_2_0.data');
    p = waitFor<[WatchProblem]>(w, 'problem', (x) => x.path.includes('shuffle_5_2_0'));
    await writeFile(join(dataDir, 'shuffle_5_2_0.data'), Buffer.alloc(7));
    await writeFile(join(await exec.dirFor('shuffle_5_2_0.index'), 'shuffle_5_2_0.index'), encodeIndex([0, 10]));
    const [mismatch] = await p;
    expect(mismatch.kind).toBe('incomplete');
    expect(w.problems().map((x) => x.kind).sort()).toEqual(['incomplete', 'length-not-multiple-of-8']);

    const ok = waitFor<[MapOutput]>(w, 'committed');
    await writeFile(join(dataDir, 'shuffle_5_2_0.data'), Buffer.alloc(10));
    expect((await ok)[0].mapId).toBe('2');
    expect(w.problems().map((x) => x.kind)).toEqual(['length-not-multiple-of-8']);
  });

  it('reports an unreadable directory and picks it up once readable', async () => {
    if (process.getuid?.() === 0) {
      // Root reads through mode bits; use an unreadable *file* instead, which root also bypasses,
      // so exercise the watcher's error path through a directory replaced by a file.
      const exec = new SparkLikeExecutor([root]);
      await mkdir(exec.blockManagerDirs[0] as string, { recursive: true });
      await writeFile(join(exec.blockManagerDirs[0] as string, '0a'), 'not a dir');
      const w = await startWatcher();
      await w.rescan();
      expect(committed).toEqual([]);
      await rm(join(exec.blockManagerDirs[0] as string, '0a'));
      const e = waitFor<[MapOutput]>(w, 'committed');
      await exec.commit({ shuffleId: 0, mapId: 9, partitions: [3] });
      expect((await e)[0].mapId).toBe('9');
      return;
    }
    const exec = new SparkLikeExecutor([root]);
    const files = await exec.commit({ shuffleId: 0, mapId: 9, partitions: [3] });
    const sub = join(files.indexPath, '..');
    await chmod(sub, 0o000);
    const w = await startWatcher();
    expect(committed).toEqual([]);
    await chmod(sub, 0o755);
    const e = waitFor<[MapOutput]>(w, 'committed');
    await w.rescan();
    expect((await e)[0].mapId).toBe('9');
    expect(await readFile(files.indexPath)).toHaveLength(16);
  });
});
