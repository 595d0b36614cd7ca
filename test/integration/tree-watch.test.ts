import { afterEach, expect, it } from 'vitest';
import { rename, unlink, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { TreeWatch } from '../../agent/watch/tree-watch.js';
import { tempDir } from '../kit/temp-dir.js';

let done: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const d of done.reverse()) await d();
  done = [];
});

it('drops file events and listed entries whose name fails isFileName before anything else looks at them', async () => {
  const { path: root, cleanup } = await tempDir('ssa-tree-');
  done.push(cleanup);
  // Already there at start: only the listing can report them.
  await writeFile(join(root, 'temp_listed'), 'x');
  await writeFile(join(root, 'listed.data'), 'x');
  const files: string[] = [];
  const relevant: string[] = [];
  let arrived: (() => void) | undefined;
  const tree = new TreeWatch(0, {
    isRelevant: (p) => {
      relevant.push(basename(p));
      return true;
    },
    isFileName: (name) => name.endsWith('.data'),
    onFile: (p) => {
      files.push(basename(p));
      if (basename(p) === 'last.data') arrived?.();
    },
    onDirGone: () => undefined,
    onError: (_p, message) => {
      throw new Error(message);
    },
  });
  done.push(async () => tree.close());
  await tree.addRoot(root);
  const last = new Promise<void>((r) => (arrived = r));
  // What an executor does around each output: scratch files created, written, renamed, deleted.
  await writeFile(join(root, 'temp_shuffle_1'), 'spill');
  await writeFile(join(root, 'x.data.attempt'), 'attempt');
  await rename(join(root, 'x.data.attempt'), join(root, 'x.data.attempt2'));
  await unlink(join(root, 'temp_shuffle_1'));
  await unlink(join(root, 'x.data.attempt2'));
  // inotify reports a directory's events in order: once this one is seen, the scratch files' were handled.
  await writeFile(join(root, 'last.data'), 'x');
  await last;
  expect(files.filter((f) => f !== 'last.data')).toEqual(['listed.data']);
  expect(relevant.filter((f) => f.startsWith('temp_') || f.includes('.attempt'))).toEqual([]);
});
