/**
 * Watches executors' local directories and reports each Spark map output the moment it is
 * committed (index valid, data file consistent with it) and when it is removed.
 *
 * Spark commits by renaming the index into place first and the data second, so an index alone is
 * not an output: every event on an index or data file schedules a check of the pair, and only a
 * consistent pair is reported. A periodic rescan catches anything the file events missed
 * (inotify overflow, a directory that was unreadable for a while).
 */
import { EventEmitter } from 'node:events';
import { mkdir, readFile, readdir, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, sep } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import { parseSparkFileName, shuffleFileName } from '../spark/file-names.js';
import { checkCommitted, InvalidIndexError, parseIndex } from '../spark/index-file.js';
import { localPlacement } from '../spark/java-hash.js';
import { isSafeAppId } from '../spark/fallback-key.js';
import { Limiter } from '../util/limiter.js';
import { errorCode } from '../util/errors.js';
import { matchLayout, parseLayout, type LocalDirsLayout } from './layout.js';
import { mapOutputId, type MapOutput } from './map-output.js';

export interface WatchProblem {
  /** The file or directory concerned. */
  path: string;
  /** Short machine-readable kind: an IndexProblem, `unreadable`, `watch-error`, `incomplete`. */
  kind: string;
  message: string;
}

export interface RemovedOutput {
  output: MapOutput;
  /** The whole `blockmgr-*` directory is gone: the executor stopped, its outputs are still needed. */
  blockManagerDirGone: boolean;
}

export interface WatcherEvents {
  committed: [MapOutput];
  removed: [RemovedOutput];
  problem: [WatchProblem];
  /** A problem reported earlier is gone (the output committed after all, or was removed). */
  resolved: [string];
}

export interface LocalDirWatcherOptions {
  localDirs: readonly string[];
  /** `''` (one executor per root) or a template such as `{appId}/{executorId}`. */
  layout?: string;
  /** App id for outputs whose path does not name one. */
  defaultAppId: string;
  /** How long an index may wait for a consistent data file before it is reported. */
  incompleteGraceMs?: number;
  /** Delay before deciding whether a removal was a shuffle cleanup or the executor stopping. */
  removalSettleMs?: number;
  /** Period of the reconciling rescan; 0 disables it. */
  rescanIntervalMs?: number;
  /** How many index reads may run at once. */
  concurrency?: number;
  now?: () => number;
}

interface OutputState {
  key: string;
  /** `[<layout dirs>/]blockmgr-<uuid>`, relative to a root: the executor. */
  executorDir: string;
  /** Directory of the index file, and of the data file (Spark places each by its own name's hash). */
  dir: string;
  dataDir: string;
  blockManagerDir: string;
  appId: string;
  executorId: string | undefined;
  shuffleId: number;
  mapId: string;
  committed?: MapOutput;
  identity?: string;
  running: boolean;
  again: boolean;
  problem?: WatchProblem;
  graceTimer?: NodeJS.Timeout;
}

const BLOCKMGR = /^blockmgr-[0-9A-Za-z-]+$/;
const SUBDIR = /^[0-9a-f]{2,}$/;

export class LocalDirWatcher extends EventEmitter<WatcherEvents> {
  private readonly roots: string[];
  private readonly layout: LocalDirsLayout;
  private readonly states = new Map<string, OutputState>();
  private readonly limiter: Limiter;
  private readonly opts: Required<Omit<LocalDirWatcherOptions, 'localDirs' | 'layout' | 'defaultAppId'>>;
  private chokidar?: FSWatcher;
  private rescanTimer?: NodeJS.Timeout;
  private closed = false;
  private initialScanDone = false;
  private readonly inflight = new Set<Promise<void>>();

  constructor(private readonly options: LocalDirWatcherOptions) {
    super();
    if (options.localDirs.length === 0) throw new RangeError('at least one local dir is needed');
    if (!isSafeAppId(options.defaultAppId)) throw new RangeError(`app id ${JSON.stringify(options.defaultAppId)} is not usable`);
    this.roots = options.localDirs.map((d) => resolve(d));
    this.layout = parseLayout(options.layout ?? '');
    this.opts = {
      incompleteGraceMs: options.incompleteGraceMs ?? 10_000,
      removalSettleMs: options.removalSettleMs ?? 500,
      rescanIntervalMs: options.rescanIntervalMs ?? 60_000,
      concurrency: options.concurrency ?? 32,
      now: options.now ?? Date.now,
    };
    this.limiter = new Limiter(this.opts.concurrency);
  }

  /** Start watching; resolves once every output already on disk has been checked. */
  async start(): Promise<void> {
    await Promise.all(this.roots.map((r) => mkdir(r, { recursive: true }).catch(() => undefined)));
    const depth = this.layout.segments.length + 2;
    const watcher = watch(this.roots, {
      depth,
      ignoreInitial: false,
      followSymlinks: false,
      ignored: (path: string) => !this.isRelevant(path),
    });
    this.chokidar = watcher;
    watcher.on('add', (p) => this.onFileEvent(p, 'add'));
    watcher.on('change', (p) => this.onFileEvent(p, 'change'));
    watcher.on('unlink', (p) => this.onFileEvent(p, 'unlink'));
    watcher.on('unlinkDir', (p) => this.onDirRemoved(p));
    watcher.on('error', (err) => {
      this.emit('problem', { path: errorPath(err) ?? this.roots.join(','), kind: 'watch-error', message: String(err) });
    });
    await new Promise<void>((resolveReady) => watcher.once('ready', () => resolveReady()));
    await this.settled();
    this.initialScanDone = true;
    if (this.opts.rescanIntervalMs > 0) this.scheduleRescan();
  }

  /** Resolves when no check is running or queued. */
  async settled(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
  }

  /** Every output currently committed on local disk. */
  outputs(): MapOutput[] {
    const out: MapOutput[] = [];
    for (const s of this.states.values()) if (s.committed) out.push(s.committed);
    return out;
  }

  problems(): WatchProblem[] {
    const out: WatchProblem[] = [];
    for (const s of this.states.values()) if (s.problem) out.push(s.problem);
    return out;
  }

  /** Walk every root and check every index found; also notices outputs whose files vanished. */
  async rescan(): Promise<void> {
    const seen = new Set<string>();
    const visit = async (dir: string, depthLeft: number): Promise<void> => {
      let entries;
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (err) {
        const code = errorCode(err);
        if (code !== 'ENOENT') this.emit('problem', { path: dir, kind: 'unreadable', message: `cannot list ${dir}: ${code}` });
        return;
      }
      for (const e of entries) {
        const p = join(dir, e.name);
        if (!this.isRelevant(p)) continue;
        if (e.isDirectory() && depthLeft > 0) await visit(p, depthLeft - 1);
        else if (e.isFile()) {
          const key = this.schedule(p);
          if (key) seen.add(key);
        }
      }
    };
    await Promise.all(this.roots.map((r) => visit(r, this.layout.segments.length + 2)));
    for (const [key, s] of this.states) if (!seen.has(key) && s.committed) this.scheduleKey(s);
    await this.settled();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.rescanTimer);
    for (const s of this.states.values()) clearTimeout(s.graceTimer);
    await this.chokidar?.close();
    await this.settled();
  }

  private scheduleRescan(): void {
    this.rescanTimer = setTimeout(() => {
      this.rescan()
        .catch((err: unknown) => this.emit('problem', { path: this.roots.join(','), kind: 'watch-error', message: String(err) }))
        .finally(() => {
          if (!this.closed) this.scheduleRescan();
        });
    }, this.opts.rescanIntervalMs);
    this.rescanTimer.unref();
  }

  /** Which paths matter: layout dirs, blockmgr-*, their NN sub-dirs, and shuffle index/data files. */
  private isRelevant(path: string): boolean {
    const root = this.rootOf(path);
    if (root === undefined) return false;
    if (path === root) return true;
    const parts = relative(root, path).split(sep);
    const l = this.layout.segments.length;
    if (parts.length <= l) return matchLayout(this.layout, parts) !== undefined;
    if (matchLayout(this.layout, parts.slice(0, l)) === undefined) return false;
    if (!BLOCKMGR.test(parts[l] as string)) return false;
    if (parts.length === l + 1) return true;
    if (!SUBDIR.test(parts[l + 1] as string)) return false;
    if (parts.length === l + 2) return true;
    if (parts.length > l + 3) return false;
    const name = parseSparkFileName(parts[l + 2] as string);
    return name.kind === 'shuffle' && name.type !== 'checksum';
  }

  private rootOf(path: string): string | undefined {
    for (const r of this.roots) if (path === r || path.startsWith(r + sep)) return r;
    return undefined;
  }

  private onFileEvent(path: string, _event: 'add' | 'change' | 'unlink'): void {
    if (this.closed) return;
    this.schedule(path);
  }

  private onDirRemoved(path: string): void {
    if (this.closed) return;
    for (const s of this.states.values()) {
      if ([s.dir, s.dataDir].some((d) => d === path || d.startsWith(path + sep))) this.scheduleKey(s);
    }
  }

  /** Schedule a check of the output a file belongs to; returns its state key. */
  private schedule(path: string): string | undefined {
    const name = parseSparkFileName(basename(path));
    if (name.kind !== 'shuffle' || name.type === 'checksum') return undefined;
    const dir = dirname(path);
    const root = this.rootOf(path) as string;
    const parts = relative(root, dir).split(sep);
    const l = this.layout.segments.length;
    // Index and data of one output sit in different sub-directories (and maybe roots): the state
    // is per executor and map output, wherever the event came from.
    const executorDir = join(...parts.slice(0, l + 1));
    const key = `${executorDir}${sep}${name.shuffleId}_${name.mapId}`;
    let state = this.states.get(key);
    if (!state) {
      const match = matchLayout(this.layout, parts.slice(0, l)) ?? {};
      state = {
        key,
        executorDir,
        dir,
        dataDir: dir,
        blockManagerDir: join(root, executorDir),
        appId: match.appId ?? this.options.defaultAppId,
        executorId: match.executorId,
        shuffleId: name.shuffleId,
        mapId: name.mapId,
        running: false,
        again: false,
      };
      this.states.set(key, state);
    }
    this.scheduleKey(state);
    return key;
  }

  private scheduleKey(state: OutputState): void {
    if (state.running) {
      state.again = true;
      return;
    }
    state.running = true;
    const p = this.limiter
      .run(async () => {
        do {
          state.again = false;
          await this.check(state);
        } while (state.again && !this.closed);
      })
      .catch((err: unknown) => {
        this.emit('problem', { path: state.dir, kind: 'watch-error', message: `check failed: ${String(err)}` });
      })
      .finally(() => {
        state.running = false;
        this.inflight.delete(p);
      });
    this.inflight.add(p);
  }

  /** The configured roots (in order) holding this executor's `blockmgr-*`: the executor's local dirs. */
  private async executorRoots(executorDir: string): Promise<string[]> {
    const found = await Promise.all(
      this.roots.map((r) =>
        stat(join(r, executorDir)).then(
          (s) => s.isDirectory(),
          () => false,
        ),
      ),
    );
    return this.roots.filter((_, i) => found[i]);
  }

  private async check(state: OutputState): Promise<void> {
    // DiskBlockManager's placement: root `hash % numRoots`, sub-directory `(hash / numRoots) % 64`,
    // assuming `--local-dirs` lists the executor's local dirs in Spark's order.
    const roots = await this.executorRoots(state.executorDir);
    if (roots.length === 0) return this.onGone(state);
    const place = (type: 'index' | 'data'): string => {
      const name = shuffleFileName(state.shuffleId, state.mapId, type);
      const p = localPlacement(name, roots.length);
      return join(roots[p.dirId] as string, state.executorDir, p.subDir, name);
    };
    const indexPath = place('index');
    const dataPath = place('data');
    state.dir = dirname(indexPath);
    state.dataDir = dirname(dataPath);
    state.blockManagerDir = join(roots[localPlacement(basename(indexPath), roots.length).dirId] as string, state.executorDir);
    let indexBytes: Buffer;
    try {
      indexBytes = await readFile(indexPath);
    } catch (err) {
      const code = errorCode(err);
      if (code === 'ENOENT') return this.onGone(state);
      return this.setProblem(state, { path: indexPath, kind: 'unreadable', message: `cannot read ${indexPath}: ${code}` });
    }
    let offsets: number[];
    try {
      offsets = parseIndex(indexBytes);
    } catch (err) {
      if (err instanceof InvalidIndexError) {
        return this.setProblem(state, { path: indexPath, kind: err.problem, message: `${indexPath}: ${err.message}` });
      }
      throw err;
    }
    let dataLength: number | undefined;
    let dataIdentity = 'none';
    try {
      const s = await stat(dataPath);
      dataLength = s.size;
      dataIdentity = `${s.ino}:${s.size}:${s.mtimeMs}`;
    } catch (err) {
      const code = errorCode(err);
      if (code !== 'ENOENT') {
        return this.setProblem(state, { path: dataPath, kind: 'unreadable', message: `cannot stat ${dataPath}: ${code}` });
      }
    }
    try {
      checkCommitted(offsets, dataLength);
    } catch (err) {
      if (!(err instanceof InvalidIndexError)) throw err;
      if (state.committed) {
        // A committed output lost its data file: Spark is removing it (data first, then index).
        return this.onGone(state);
      }
      // Normal between the index rename and the data rename; reported only if it lasts.
      this.armGraceTimer(state, { path: indexPath, kind: 'incomplete', message: `${indexPath}: ${err.message}` });
      return;
    }
    clearTimeout(state.graceTimer);
    state.graceTimer = undefined;
    if (state.problem) {
      state.problem = undefined;
      this.emit('resolved', state.key);
    }
    const identity = `${indexBytes.toString('base64')}|${dataIdentity}`;
    if (state.identity === identity) return;
    const output: MapOutput = {
      id: mapOutputId(state.appId, state.shuffleId, state.mapId),
      appId: state.appId,
      ...(state.executorId === undefined ? {} : { executorId: state.executorId }),
      shuffleId: state.shuffleId,
      mapId: state.mapId,
      blockManagerDir: state.blockManagerDir,
      indexPath,
      indexLength: indexBytes.length,
      ...(dataLength === undefined ? {} : { dataPath }),
      dataLength: dataLength ?? 0,
      offsets,
      committedAt: this.opts.now(),
      foundAtStart: !this.initialScanDone,
    };
    state.identity = identity;
    state.committed = output;
    this.emit('committed', output);
  }

  private async onGone(state: OutputState): Promise<void> {
    clearTimeout(state.graceTimer);
    state.graceTimer = undefined;
    const committed = state.committed;
    this.states.delete(state.key);
    if (state.problem) this.emit('resolved', state.key);
    if (!committed) return;
    // Let a recursive delete of the whole tree reach the directory before deciding why it went.
    await new Promise((r) => setTimeout(r, this.opts.removalSettleMs));
    const gone = await stat(committed.blockManagerDir).then(
      () => false,
      (err: unknown) => errorCode(err) === 'ENOENT',
    );
    this.emit('removed', { output: committed, blockManagerDirGone: gone });
  }

  private setProblem(state: OutputState, problem: WatchProblem): void {
    if (state.problem?.kind === problem.kind && state.problem.message === problem.message) return;
    state.problem = problem;
    this.emit('problem', problem);
  }

  private armGraceTimer(state: OutputState, problem: WatchProblem): void {
    if (state.graceTimer) return;
    state.graceTimer = setTimeout(() => {
      state.graceTimer = undefined;
      if (this.closed || !this.states.has(state.key)) return;
      // Still inconsistent after the grace period: report it and look again.
      this.setProblem(state, problem);
      this.scheduleKey(state);
    }, this.opts.incompleteGraceMs);
    state.graceTimer.unref();
  }
}

function errorPath(err: unknown): string | undefined {
  const p = (err as { path?: unknown } | null)?.path;
  return typeof p === 'string' ? p : undefined;
}
