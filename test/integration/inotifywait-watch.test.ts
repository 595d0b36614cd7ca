/**
 * The inotifywait backend's own promises and failure modes, with the real inotifywait child:
 * scratch files never reach Node; a child that dies is replaced and what happened meanwhile is
 * found; a kernel queue overflow makes the watcher list again; without the binary, fs.watch.
 */
import { afterEach, expect, it } from 'vitest';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, rename, unlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { TreeWatch } from '../../agent/watch/tree-watch.js';
import { LocalDirWatcher, type WatchProblem } from '../../agent/watch/local-dir-watcher.js';
import type { MapOutput } from '../../agent/watch/map-output.js';
import { SparkLikeExecutor } from '../kit/spark-writer.js';
import { tempDir } from '../kit/temp-dir.js';
import { until, waitFor } from '../kit/wait.js';
import { inotifywaitBinary } from '../kit/file-events.js';

let done: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const d of done.reverse()) await d();
  done = [];
});

/** Pids of this process's inotifywait children. */
function inotifywaitChildren(): number[] {
  const pids: number[] = [];
  for (const task of readdirSync('/proc/self/task')) {
    const children = readFileSync(`/proc/self/task/${task}/children`, 'utf8').split(' ').filter((x) => x !== '');
    for (const pid of children) {
      try {
        if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'inotifywait') pids.push(Number(pid));
      } catch {
        // exited meanwhile
      }
    }
  }
  return pids;
}

/** What an executor's bypass-merge-sort writer does around each output, `n` scratch files. */
async function scratchTraffic(dir: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await writeFile(join(dir, `temp_shuffle_${i}`), 'spill');
    await unlink(join(dir, `temp_shuffle_${i}`));
  }
  await writeFile(join(dir, 'x.data.attempt'), 'attempt');
  await rename(join(dir, 'x.data.attempt'), join(dir, 'x.data.attempt2'));
  await unlink(join(dir, 'x.data.attempt2'));
}

it.each([
  { backend: 'inotifywait', scratchSeen: false },
  // The same traffic with fs.watch: every scratch file's name reaches JavaScript (the test can fail).
  { backend: 'fs.watch', scratchSeen: true },
])('with $backend, scratch files reach JavaScript: $scratchSeen', async ({ backend, scratchSeen }) => {
  const { path: root, cleanup } = await tempDir('ssa-iw-');
  done.push(cleanup);
  const names: string[] = [];
  const files: string[] = [];
  let arrived: (() => void) | undefined;
  const tree = new TreeWatch(
    0,
    {
      isRelevant: () => true,
      isFileName: (name) => {
        names.push(name);
        return name.endsWith('.data');
      },
      onFile: (p) => {
        files.push(basename(p));
        if (basename(p) === 'last.data') arrived?.();
      },
      onDirGone: () => undefined,
      onError: (_p, message) => {
        throw new Error(message);
      },
    },
    backend === 'inotifywait' ? { binary: inotifywaitBinary(), include: '(^$|/[^/]*\\.data$)' } : undefined,
  );
  done.push(async () => tree.close());
  await tree.addRoot(root);
  expect(tree.backend).toBe(backend);
  const last = new Promise<void>((r) => (arrived = r));
  await scratchTraffic(root, 50);
  // Events of one directory come in order: once this one is seen, the scratch files' were handled.
  // Renamed into place, as Spark commits (inotifywait reports no file written in place).
  await writeFile(join(root, 'last.data.attempt'), 'x');
  await rename(join(root, 'last.data.attempt'), join(root, 'last.data'));
  await last;
  expect(names.some((n) => n.startsWith('temp_shuffle_'))).toBe(scratchSeen);
  expect(files.every((f) => f === 'last.data')).toBe(true);
});

async function startWatcher(root: string, inotifywait: string): Promise<{ w: LocalDirWatcher; committed: MapOutput[]; problems: WatchProblem[] }> {
  const w = new LocalDirWatcher({ localDirs: [root], defaultAppId: 'app-1', removalSettleMs: 50, rescanIntervalMs: 0, inotifywait });
  const committed: MapOutput[] = [];
  const problems: WatchProblem[] = [];
  w.on('committed', (o) => committed.push(o));
  w.on('problem', (p) => problems.push(p));
  done.push(() => w.close());
  await w.start();
  return { w, committed, problems };
}

it('replaces an inotifywait child that dies, says so, and finds what was committed meanwhile', async () => {
  const { path: root, cleanup } = await tempDir('ssa-iw-');
  done.push(cleanup);
  const exec = new SparkLikeExecutor([root]);
  await exec.commit({ shuffleId: 0, mapId: 0, partitions: [10] });
  const { w, committed, problems } = await startWatcher(root, inotifywaitBinary());
  expect(committed.map((o) => o.mapId)).toEqual(['0']);
  const [child] = await until(() => (inotifywaitChildren().length === 1 ? inotifywaitChildren() : undefined), 'one inotifywait child');
  const died = waitFor<[WatchProblem]>(w, 'problem', (p) => p.path === 'inotifywait');
  process.kill(child as number, 'SIGKILL');
  await died;
  // Committed while no child may be watching: found by the listing after the new child is up.
  const found = waitFor<[MapOutput]>(w, 'committed', (o) => o.mapId === '1');
  await exec.commit({ shuffleId: 0, mapId: 1, partitions: [20, 30] });
  await found;
  expect(w.fileEvents()).toMatchObject({ backend: 'inotifywait', died: 1 });
  expect(problems.find((p) => p.path === 'inotifywait')?.message).toMatch(/SIGKILL.*restarting/);
  await until(() => inotifywaitChildren().length === 1 && !inotifywaitChildren().includes(child as number), 'a new child');
  // And the new child reports the next output by its events.
  const next = waitFor<[MapOutput]>(w, 'committed', (o) => o.mapId === '2');
  await exec.commit({ shuffleId: 0, mapId: 2, partitions: [5] });
  await next;
});

it('lists every directory again after a kernel queue overflow', async () => {
  const { path: root, cleanup } = await tempDir('ssa-iw-');
  done.push(cleanup);
  const exec = new SparkLikeExecutor([root]);
  await exec.commit({ shuffleId: 0, mapId: 0, partitions: [10] });
  // Every NN directory there from the start (as after an executor's first tasks): the output
  // below then lands in a watched directory and no new child is started.
  for (let i = 0; i < 64; i++) await mkdir(join(exec.blockManagerDirs[0] as string, i.toString(16).padStart(2, '0')), { recursive: true });
  const { w } = await startWatcher(root, inotifywaitBinary());
  const [child] = await until(() => (inotifywaitChildren().length === 1 ? inotifywaitChildren() : undefined), 'one inotifywait child');
  const dir = join(exec.blockManagerDirs[0] as string, readdirSync(exec.blockManagerDirs[0] as string)[0] as string);
  const queued = Number(readFileSync('/proc/sys/fs/inotify/max_queued_events', 'utf8'));
  // A stopped child reads nothing: the kernel queue fills with the scratch files' events (the
  // name filter is in the child, not in the kernel) and overflows.
  process.kill(child as number, 'SIGSTOP');
  try {
    // One event per scratch file reaches the queue (its deletion).
    await scratchTraffic(dir, queued + 100);
    const found = waitFor<[MapOutput]>(w, 'committed', (o) => o.mapId === '1');
    await exec.commit({ shuffleId: 0, mapId: 1, partitions: [20, 30] });
    process.kill(child as number, 'SIGCONT');
    await found;
  } finally {
    if (inotifywaitChildren().includes(child as number)) process.kill(child as number, 'SIGCONT');
  }
  expect(w.fileEvents()).toMatchObject({ overflows: 1, started: 1 });
}, 60_000);

it('uses fs.watch when inotifywait cannot be started, and says so', async () => {
  const { path: root, cleanup } = await tempDir('ssa-iw-');
  done.push(cleanup);
  const exec = new SparkLikeExecutor([root]);
  await exec.commit({ shuffleId: 0, mapId: 0, partitions: [10] });
  const { w, committed, problems } = await startWatcher(root, join(root, 'no-such-inotifywait'));
  expect(committed.map((o) => o.mapId)).toEqual(['0']);
  expect(w.fileEvents().backend).toBe('fs.watch');
  expect(problems.filter((p) => p.path === 'inotifywait').map((p) => p.message)).toEqual([expect.stringMatching(/ENOENT.*giving up on inotifywait, using fs\.watch/)]);
  const next = waitFor<[MapOutput]>(w, 'committed', (o) => o.mapId === '1');
  await exec.commit({ shuffleId: 0, mapId: 1, partitions: [20] });
  await next;
});
