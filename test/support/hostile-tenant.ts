/**
 * What a hostile tenant can leave in its own executor directory, where the agent reads: links
 * to secrets and to other apps' outputs, FIFOs, a device, a sparse index, a directory named like
 * a data file, thousands of sub-directories. Real files, real FIFOs (mkfifo), real links.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { link, lstat, mkdir, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeIndex } from '../../agent/spark/index-file.js';
import { shuffleFileName } from '../../agent/spark/file-names.js';

export function mkfifo(path: string): void {
  execFileSync('mkfifo', [path]);
}

/** Inotify watches held by process `pid` (one `inotify wd:` line each in its fdinfo). */
export function inotifyWatches(pid: number | 'self'): number {
  let n = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let info: string;
    try {
      info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
    } catch {
      continue; // closed meanwhile
    }
    n += info.split('\n').filter((l) => l.startsWith('inotify wd:')).length;
  }
  return n;
}

/**
 * Inotify watches held by this process and its child processes (the watcher's inotifywait child
 * holds the NN directories' watches). A child being replaced holds its watches until it exits.
 */
export function inotifyWatchesWithChildren(pid: number | 'self' = 'self'): number {
  let n = inotifyWatches(pid);
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    let children: string;
    try {
      children = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8');
    } catch {
      continue;
    }
    for (const pid of children.split(' ').filter((x) => x !== '')) {
      try {
        n += inotifyWatches(Number(pid));
      } catch {
        // exited meanwhile
      }
    }
  }
  return n;
}

export interface HostileOptions {
  /** The tenant's `blockmgr-*` (created). */
  blockManagerDir: string;
  /** The sub-directory the files go in (default `0a`). */
  tenantSubDir?: string;
  /** A file outside every executor directory (a secret the agent can read). */
  secretPath: string;
  secretSize: number;
  /** Another app's sub-directory (`.../blockmgr-*\/NN`) and `blockmgr-*`, to link to. */
  victimSubDir: string;
  victimBlockManagerDir: string;
  /** What the links inside the victim's directories would be named under the tenant. */
  victimSubDirName: string;
  /** Empty hex-named sub-directories to make (not Spark's names). */
  subDirs?: number;
  /** FIFOs named as data files (each with an all-empty index, so a naive reader commits them). */
  dataFifos?: number;
  /** Leave out what blocks a naive reader in the same process (FIFO index, /dev/zero). */
  inProcessSafe?: boolean;
}

/** Shuffle ids the hostile files use: none of them may be committed, stored or served. */
export const HOSTILE_SHUFFLES = { secretLink: 0, hardLink: 1, dirAsData: 3, fifoIndex: 9, devZero: 10, sparse: 11, dataFifo: 12 } as const;

/** Plant every hostile file; returns the paths planted (for messages). */
export async function plantHostileFiles(o: HostileOptions): Promise<string[]> {
  const planted: string[] = [];
  const sub = join(o.blockManagerDir, o.tenantSubDir ?? '0a');
  await mkdir(sub, { recursive: true });
  const put = async (name: string, make: (path: string) => Promise<void> | void): Promise<string> => {
    const p = join(sub, name);
    await make(p);
    planted.push(p);
    return p;
  };
  const index = (shuffleId: number, offsets: number[]): Promise<string> =>
    put(shuffleFileName(shuffleId, '1', 'index'), (p) => writeFile(p, encodeIndex(offsets)));

  // 1. A data file linked to a secret, with an index of exactly the secret's length.
  await put(shuffleFileName(HOSTILE_SHUFFLES.secretLink, '1', 'data'), (p) => symlink(o.secretPath, p));
  await index(HOSTILE_SHUFFLES.secretLink, [0, o.secretSize]);
  // 2. A hard link to the secret (same file system), with a matching index.
  await put(shuffleFileName(HOSTILE_SHUFFLES.hardLink, '1', 'data'), (p) => link(o.secretPath, p));
  await index(HOSTILE_SHUFFLES.hardLink, [0, o.secretSize]);
  // 3. A directory named like a data file, with an index of the directory's own size.
  const dir = await put(shuffleFileName(HOSTILE_SHUFFLES.dirAsData, '1', 'data'), (p) => mkdir(p).then(() => undefined));
  await index(HOSTILE_SHUFFLES.dirAsData, [0, (await lstat(dir)).size]);
  // 4. A sparse 400 MiB index of zeros: no disk blocks, "every partition empty".
  await put(shuffleFileName(HOSTILE_SHUFFLES.sparse, '1', 'index'), async (p) => {
    await writeFile(p, '');
    await truncate(p, 400 * 1024 * 1024);
  });
  // 5. FIFOs as data files, each with an index that expects no bytes.
  for (let i = 0; i < (o.dataFifos ?? 0); i++) {
    const mapId = String(100 + i);
    // The FIFO first: an all-empty index alone is a valid data-less output.
    await put(shuffleFileName(HOSTILE_SHUFFLES.dataFifo, mapId, 'data'), (p) => mkfifo(p));
    await put(shuffleFileName(HOSTILE_SHUFFLES.dataFifo, mapId, 'index'), (p) => writeFile(p, encodeIndex([0, 0])));
  }
  if (!o.inProcessSafe) {
    // 6. A FIFO as an index (a blocking open never returns) and an index linked to /dev/zero.
    await put(shuffleFileName(HOSTILE_SHUFFLES.fifoIndex, '1', 'index'), (p) => mkfifo(p));
    await put(shuffleFileName(HOSTILE_SHUFFLES.devZero, '1', 'index'), (p) => symlink('/dev/zero', p));
  }
  // 7. Another app's sub-directory and whole blockmgr-* linked into the tenant's tree.
  await symlink(o.victimSubDir, join(o.blockManagerDir, o.victimSubDirName));
  planted.push(join(o.blockManagerDir, o.victimSubDirName));
  const parent = join(o.blockManagerDir, '..');
  await symlink(o.victimBlockManagerDir, join(parent, 'blockmgr-00000000-0000-0000-0000-00000000link'));
  planted.push(join(parent, 'blockmgr-00000000-0000-0000-0000-00000000link'));
  // 8. Thousands of empty sub-directories with hex names Spark never uses (0000, 0001, ...).
  for (let i = 0; i < (o.subDirs ?? 0); i++) await mkdir(join(o.blockManagerDir, i.toString(16).padStart(4, '0')));
  return planted;
}
