/**
 * The watcher against a hostile tenant sharing the node (DaemonSet layout): links to a secret
 * and into another app's directories, a hard link, FIFOs as data files, a directory named like a
 * data file, a sparse 400 MiB index, 20,000 hex sub-directories. Nothing of the tenant's is
 * committed, each refusal is reported (without sizes), the other app's outputs are committed,
 * and the watches stay near what Spark's own directories need. Real files, FIFOs and links; the
 * files that would block this very process on a naive reader (a FIFO index, /dev/zero) are left
 * to the end-to-end test, which runs the agent as a child.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { LocalDirWatcher, type WatchProblem } from '../../agent/watch/local-dir-watcher.js';
import type { MapOutput } from '../../agent/watch/map-output.js';
import { SparkLikeExecutor } from '../kit/spark-writer.js';
import { tempDir } from '../kit/temp-dir.js';
import { until, waitFor } from '../kit/wait.js';
import { inotifyWatchesWithChildren as inotifyWatches, plantHostileFiles } from '../support/hostile-tenant.js';
import { FILE_EVENT_BACKENDS } from '../kit/file-events.js';

const VICTIM = 'spark-victim';
const TENANT = 'spark-tenant';

describe.each(FILE_EVENT_BACKENDS)('LocalDirWatcher with a hostile tenant, NN directories by $name', (backend) => {
  let path: string;
  let cleanup: () => Promise<void>;
  let watcher: LocalDirWatcher | undefined;

  beforeEach(async () => {
    ({ path, cleanup } = await tempDir('ssa-hostile-'));
  });

  afterEach(async () => {
    await watcher?.close();
    watcher = undefined;
    await cleanup();
  });

  it('commits none of its files, reports each refusal without sizes, and keeps its watches bounded', async () => {
    const root = join(path, 'local');
    const victim = new SparkLikeExecutor([join(root, VICTIM, 'exec-1')]);
    const v0 = await victim.commit({ shuffleId: 0, mapId: 0, partitions: [100, 200] });
    const secret = Buffer.from('SECRET '.repeat(143)); // 1001 bytes
    const secretPath = join(path, 'secret');
    await writeFile(secretPath, secret);
    const tenantBlockManager = join(root, TENANT, 'exec-9', 'blockmgr-11111111-2222-3333-4444-555555555555');
    await mkdir(tenantBlockManager, { recursive: true });

    const committed: MapOutput[] = [];
    const problems: WatchProblem[] = [];
    const watchesBefore = inotifyWatches();
    const w = new LocalDirWatcher({ inotifywait: backend.inotifywait(), localDirs: [root], layout: '{appId}/{executorId}', defaultAppId: 'default-app', removalSettleMs: 50, rescanIntervalMs: 0, incompleteGraceMs: 200 });
    watcher = w;
    w.on('committed', (o) => committed.push(o));
    w.on('problem', (p) => problems.push(p));
    await w.start();

    const victimSub = dirname(v0.dataPath as string);
    const planted = await plantHostileFiles({
      blockManagerDir: tenantBlockManager,
      tenantSubDir: basename(victimSub) === '0a' ? '0b' : '0a',
      secretPath,
      secretSize: secret.length,
      victimSubDir: victimSub,
      victimBlockManagerDir: victim.blockManagerDirs[0] as string,
      victimSubDirName: basename(victimSub),
      dataFifos: 3,
      subDirs: 20_000,
      inProcessSafe: true,
    });
    // The other app keeps committing, into the very directory the tenant linked.
    const v1Event = waitFor<[MapOutput]>(w, 'committed', (o) => o.appId === VICTIM && o.mapId === '1');
    const v1 = await victim.commit({ shuffleId: 0, mapId: 1, partitions: [10, 20, 30] });
    await v1Event;

    // Every planted file, link and directory is refused and reported. fs.watch's events check each;
    // inotifywait reports renames and deletions only (Spark commits by renaming), so what a tenant
    // makes in place is seen by a listing: the periodic rescan's, run here at once.
    await w.rescan();
    const reported = (p: string): boolean => problems.some((x) => x.path === p);
    const expectedReports = planted.filter((p) => !/\.index$/.test(p) || /shuffle_11_/.test(p));
    await until(async () => expectedReports.every(reported), `reports of ${expectedReports.filter((p) => !reported(p)).join(', ')}`, 15_000);
    await w.settled();

    expect(committed.filter((o) => o.appId !== VICTIM)).toEqual([]);
    expect(committed.map((o) => o.id).sort()).toEqual([`${VICTIM}/0/0`, `${VICTIM}/0/1`]);
    expect(committed.find((o) => o.mapId === '1')?.dataPath).toBe(v1.dataPath);
    const kinds = new Set(problems.map((p) => p.kind));
    for (const k of ['symlink', 'hard-link', 'not-regular-file', 'too-large']) expect(kinds, k).toContain(k);
    // Tenants read these messages in /v1/status: no sizes (the secret's length would tell a
    // forger what to put in the index).
    for (const p of problems) expect(p.message).not.toMatch(/\d+ bytes|1001|has \d+/);
    // Spark's directories only: 64 sub-directories at most per blockmgr-*, not 20,000.
    expect(inotifyWatches() - watchesBefore).toBeLessThan(200);
  });
  it('watches at most --max-block-manager-dirs blockmgr-* per executor and --max-watched-dirs in all, and says so', async () => {
    const root = join(path, 'local');
    const executor = join(root, TENANT, 'exec-1');
    for (let i = 0; i < 12; i++) await mkdir(join(executor, `blockmgr-${String(i).padStart(8, '0')}-0000-0000-0000-000000000000`, '00'), { recursive: true });
    const other = new SparkLikeExecutor([join(root, VICTIM, 'exec-1')]);
    await other.commit({ shuffleId: 0, mapId: 0, partitions: [5] });
    const problems: WatchProblem[] = [];
    const watchesBefore = inotifyWatches();
    const w = new LocalDirWatcher({ inotifywait: backend.inotifywait(), localDirs: [root], layout: '{appId}/{executorId}', defaultAppId: 'default-app', rescanIntervalMs: 0, maxBlockManagerDirs: 3 });
    watcher = w;
    w.on('problem', (p) => problems.push(p));
    await w.start();
    // root, 2 apps, 2 executors; 3 of the tenant's blockmgr-* with their one sub-directory each;
    // the other app's blockmgr-* and the sub-directories its files went to.
    const otherDirs = 1 + (await readdir(other.blockManagerDirs[0] as string)).length;
    // A replaced inotifywait child holds its watches until it has exited.
    const expected = 5 + 3 * 2 + otherDirs;
    await until(() => inotifyWatches() - watchesBefore === expected, () => `${expected} watches, not ${inotifyWatches() - watchesBefore}`, 5_000);
    expect(problems.filter((p) => p.kind === 'watch-limit')).toHaveLength(1);
    expect(w.outputs().map((o) => o.id)).toEqual([`${VICTIM}/0/0`]);
    await w.close();

    const capped = new LocalDirWatcher({ inotifywait: backend.inotifywait(), localDirs: [root], layout: '{appId}/{executorId}', defaultAppId: 'default-app', rescanIntervalMs: 0, maxWatchedDirs: 4 });
    watcher = capped;
    const cappedProblems: WatchProblem[] = [];
    capped.on('problem', (p) => cappedProblems.push(p));
    const before = inotifyWatches();
    await capped.start();
    await until(() => inotifyWatches() - before <= 4, () => `at most 4 watches, not ${inotifyWatches() - before}`, 5_000);
    expect(cappedProblems.filter((p) => p.kind === 'watch-limit' && /--max-watched-dirs/.test(p.message))).toHaveLength(1);
  });
});
