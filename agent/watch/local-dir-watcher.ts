/**
 * Watches executors' local directories and reports each Spark map output the moment it is
 * committed (index valid, data file consistent with it) and when it is removed.
 *
 * Spark commits by renaming the index into place first and the data second, so an index alone is
 * not an output: every event on an index or data file schedules a check of the pair, and only a
 * consistent pair is reported. A periodic rescan catches anything the file events missed
 * (inotify overflow, a directory that was unreadable for a while).
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { closeSync, read as fsRead, readSync } from 'node:fs';
import { lstat, mkdir, readdir, realpath } from 'node:fs/promises';
import { basename, join, relative, resolve, sep } from 'node:path';
import { TreeWatch, type FileEventsBackend } from './tree-watch.js';
import { isSparkSubDir, parseSparkFileName, shuffleFileName } from '../spark/file-names.js';
import { localPlacement } from '../spark/java-hash.js';
import { checkCommitted, InvalidIndexError, parseIndex, type IndexProblem } from '../spark/index-file.js';
import { isSafeAppId } from '../spark/fallback-key.js';
import { Limiter } from '../util/limiter.js';
import { errorCode } from '../util/errors.js';
import { identityOf, openCheckedSync, UnsafeFileError, type FileIdentity } from '../util/safe-file.js';
import { matchLayout, parseLayout, type LocalDirsLayout } from './layout.js';
import { mapOutputId, type MapOutput } from './map-output.js';

export interface WatchProblem {
  /** The file or directory concerned. */
  path: string;
  /** Short machine-readable kind: an IndexProblem, an UnsafeReason, `unreadable`, `watch-error`,
   * `incomplete`, `watch-limit`. */
  kind: string;
  /** Shown to anyone who can read `/v1/status`, tenants included: names the file and what is
   * wrong, never sizes or offsets (they would tell a tenant how to make a forged pair match). */
  message: string;
  /** Numbers for the operator's log; not part of the status document. */
  detail?: string;
}

/** The tenant-visible text of each index problem (the InvalidIndexError message goes to `detail`). */
const INDEX_PROBLEM_TEXT: Record<IndexProblem, string> = {
  empty: 'index file is empty',
  'length-not-multiple-of-8': 'index length is not a whole number of offsets',
  'first-offset-not-zero': 'first index offset is not 0',
  'offsets-decreasing': 'index offsets decrease',
  'offset-too-large': 'index offset is out of range',
  'data-missing': 'index expects data but there is no data file',
  'data-length-mismatch': 'data file length does not match the index',
};

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
  /** Largest index accepted, in partitions (an index is `(partitions + 1) * 8` bytes). */
  maxPartitions?: number;
  /** Spark's `spark.diskStore.subDirectories`: only `00` .. its value - 1 (hex) are watched. */
  sparkSubDirs?: number;
  /** `blockmgr-*` directories watched in one executor directory (Spark makes one per local dir). */
  maxBlockManagerDirs?: number;
  /** Directories watched in all (one inotify watch each). */
  maxWatchedDirs?: number;
  /**
   * Path of Debian's `inotifywait` (inotify-tools): the `NN` directories, where Spark writes its
   * scratch files, are then watched by it (no write events, other files' events dropped before
   * Node sees them). Undefined: fs.watch everywhere.
   */
  inotifywait?: string;
  now?: () => number;
}

/** What watches the `NN` directories, and the inotifywait children's history. */
export interface FileEventsStatus {
  backend: FileEventsBackend;
  /** inotifywait children started (one more each time the list of directories changes). */
  started: number;
  /** Children that exited unasked (each followed by a new one and a listing of every directory). */
  died: number;
  /** Kernel queue overflows reported (each followed by a listing of every directory). */
  overflows: number;
}

interface OutputState {
  /** The output id `<appId>/<shuffleId>/<mapId>` (a map id is a task attempt id, unique per app),
   * after `<namespace>|` when the layout names one: another namespace's app of the same id is
   * another output, never merged with this one. */
  key: string;
  namespace: string | undefined;
  appId: string;
  executorId: string | undefined;
  shuffleId: number;
  mapId: string;
  /** Where the files were seen. DiskBlockManager places each file by the hash of its own name,
   * so index and data usually sit in different sub-directories, even different roots. */
  indexPath?: string;
  dataPath?: string;
  committed?: MapOutput;
  identity?: string;
  running: boolean;
  again: boolean;
  problem?: WatchProblem;
  /** The latest problem seen, reported if it outlasts the grace period. */
  suspect?: WatchProblem;
  graceTimer?: NodeJS.Timeout;
}

const BLOCKMGR = /^blockmgr-[0-9A-Za-z-]+$/;
/** Index files up to this size are read synchronously (see check()); larger ones through the pool. */
const SYNC_READ_LIMIT = 64 * 1024;

export class LocalDirWatcher extends EventEmitter<WatcherEvents> {
  private roots: string[];
  private readonly layout: LocalDirsLayout;
  private readonly states = new Map<string, OutputState>();
  private readonly limiter: Limiter;
  private readonly opts: Required<Omit<LocalDirWatcherOptions, 'localDirs' | 'layout' | 'defaultAppId' | 'inotifywait'>>;
  private tree?: TreeWatch;
  private rescanTimer?: NodeJS.Timeout;
  private closed = false;
  private closing: Promise<void> | undefined;
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
      maxPartitions: options.maxPartitions ?? 1_000_000,
      sparkSubDirs: options.sparkSubDirs ?? 64,
      maxBlockManagerDirs: options.maxBlockManagerDirs ?? 8,
      maxWatchedDirs: options.maxWatchedDirs ?? 16_384,
      now: options.now ?? Date.now,
    };
    this.limiter = new Limiter(this.opts.concurrency);
  }

  /** Start watching; resolves once every output already on disk has been checked. */
  async start(): Promise<void> {
    await Promise.all(this.roots.map((r) => mkdir(r, { recursive: true }).catch(() => undefined)));
    // Canonical roots: a file is accepted only when the kernel names it by the very path the
    // watcher built (no symlink on the way), so the roots themselves must be free of symlinks.
    this.roots = await Promise.all(this.roots.map((r) => realpath(r).catch(() => r)));
    const l = this.layout.segments.length;
    const tree = new TreeWatch(l + 2, {
      isRelevant: (p) => this.isRelevant(p),
      isFileName: isOutputFileName,
      // blockmgr-* sit at level l + 1; their sub-directories are bounded by name (isRelevant).
      maxChildDirs: (level) => (level === l + 1 ? this.opts.maxBlockManagerDirs : undefined),
      maxDirs: this.opts.maxWatchedDirs,
      onFile: (p) => {
        if (!this.closed) this.schedule(p);
      },
      onDirGone: (p) => this.onDirRemoved(p),
      onError: (path, message) => this.emit('problem', { path, kind: 'unreadable', message }),
      onLimit: (path, message) => this.emit('problem', { path, kind: 'watch-limit', message }),
      onSymlink: (path) => this.emit('problem', { path, kind: 'symlink', message: `${path} is a symbolic link; not entered` }),
      onBackendError: (message) => this.emit('problem', { path: 'inotifywait', kind: 'watch-error', message }),
      // The tree lists every NN directory again; a rescan also finds the outputs removed meanwhile.
      onLost: () => {
        if (this.initialScanDone && !this.closed) void this.rescan().catch((err: unknown) => this.emit('problem', { path: this.roots.join(','), kind: 'watch-error', message: String(err) }));
      },
    }, this.options.inotifywait === undefined ? undefined : { binary: this.options.inotifywait, include: OUTPUT_FILE_PATH_ERE });
    this.tree = tree;
    await Promise.all(this.roots.map((r) => tree.addRoot(r)));
    await this.settled();
    this.initialScanDone = true;
    if (this.opts.rescanIntervalMs > 0) this.scheduleRescan();
  }

  /** What watches the NN directories (fs.watch until start(), and once inotifywait gave up). */
  fileEvents(): FileEventsStatus {
    const stats = this.tree?.inotifywaitStats ?? { started: 0, died: 0, overflows: 0 };
    return { backend: this.tree?.backend ?? 'fs.watch', ...stats };
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

  /**
   * Walk every root and check every output file not known yet; also re-checks known outputs
   * whose files were not found (they vanished without an event).
   */
  async rescan(): Promise<void> {
    const seen = new Set<string>();
    const budget = { dirs: this.opts.maxWatchedDirs };
    await Promise.all(this.roots.map((r) => this.scanDir(r, this.layout.segments.length + 2, seen, budget)));
    for (const [key, s] of this.states) if (!seen.has(key) && s.committed) this.scheduleKey(s);
    await this.settled();
  }

  /**
   * List `dir` (and below, `depthLeft` levels) and schedule checks of output files not known yet.
   * The same bounds as the tree's watches, without depending on how far the tree got (a rescan
   * may run during the initial scan): Dirent types do not follow symlinks, at most
   * `maxBlockManagerDirs` blockmgr-* per directory (the watched ones first) and `maxWatchedDirs`
   * directories in all.
   */
  private async scanDir(dir: string, depthLeft: number, seen: Set<string>, budget: { dirs: number }): Promise<void> {
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      const code = errorCode(err);
      if (code !== 'ENOENT' && code !== 'ENOTDIR') this.emit('problem', { path: dir, kind: 'unreadable', message: `cannot list ${dir}: ${code}` });
      return;
    }
    const relevant = entries.map((e) => ({ e, p: join(dir, e.name) })).filter(({ p }) => this.isRelevant(p));
    // depthLeft 2: the entries are blockmgr-* directories.
    const dirCap = depthLeft === 2 ? this.opts.maxBlockManagerDirs : Infinity;
    const dirs = relevant.filter(({ e }) => e.isDirectory() && depthLeft > 0);
    if (dirs.length > dirCap) dirs.sort((a, b) => Number(this.tree?.watching(b.p) ?? false) - Number(this.tree?.watching(a.p) ?? false));
    for (const { p } of dirs.slice(0, dirCap)) {
      if (budget.dirs <= 0) break;
      budget.dirs--;
      await this.scanDir(p, depthLeft - 1, seen, budget);
    }
    if (depthLeft > 0) return;
    for (const { p } of relevant) {
      // Anything with an output's name (links, FIFOs, directories): check() refuses what is not a file.
      const key = this.scheduleIfUnknown(p);
      if (key) seen.add(key);
    }
  }

  /** Stop watching and wait for work under way. Memoised: every caller waits for the one close. */
  close(): Promise<void> {
    this.closing ??= this.closeOnce();
    return this.closing;
  }

  private async closeOnce(): Promise<void> {
    this.closed = true;
    clearTimeout(this.rescanTimer);
    for (const s of this.states.values()) clearTimeout(s.graceTimer);
    this.tree?.close();
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
    if (!isSparkSubDir(parts[l + 1] as string, this.opts.sparkSubDirs)) return false;
    if (parts.length === l + 2) return true;
    if (parts.length > l + 3) return false;
    const name = parseSparkFileName(parts[l + 2] as string);
    return name.kind === 'shuffle' && name.type !== 'checksum';
  }

  private rootOf(path: string): string | undefined {
    for (const r of this.roots) if (path === r || path.startsWith(r + sep)) return r;
    return undefined;
  }

  private onDirRemoved(path: string): void {
    if (this.closed) return;
    for (const s of this.states.values()) {
      if ([s.indexPath, s.dataPath].some((f) => f !== undefined && f.startsWith(path + sep))) this.scheduleKey(s);
    }
  }

  /** Which output a file belongs to, or undefined for files that are not shuffle index/data. */
  private identify(path: string): { key: string; namespace?: string; appId: string; executorId?: string; shuffleId: number; mapId: string; type: 'index' | 'data' } | undefined {
    const name = parseSparkFileName(basename(path));
    if (name.kind !== 'shuffle' || name.type === 'checksum') return undefined;
    const root = this.rootOf(path);
    if (root === undefined) return undefined;
    const parts = relative(root, path).split(sep);
    const match = matchLayout(this.layout, parts.slice(0, this.layout.segments.length)) ?? {};
    const appId = match.appId ?? this.options.defaultAppId;
    const id = mapOutputId(appId, name.shuffleId, name.mapId);
    return { key: match.namespace === undefined ? id : `${match.namespace}|${id}`, appId, ...match, shuffleId: name.shuffleId, mapId: name.mapId, type: name.type };
  }

  /** Schedule a check of the output a file belongs to; returns its state key. */
  private schedule(path: string): string | undefined {
    const id = this.identify(path);
    if (!id) return undefined;
    let state = this.states.get(id.key);
    if (!state) {
      state = { key: id.key, namespace: id.namespace, appId: id.appId, executorId: id.executorId, shuffleId: id.shuffleId, mapId: id.mapId, running: false, again: false };
      this.states.set(id.key, state);
    }
    if (id.type === 'index') state.indexPath = path;
    else state.dataPath = path;
    this.scheduleKey(state);
    return id.key;
  }

  private scheduleIfUnknown(path: string): string | undefined {
    const id = this.identify(path);
    if (!id) return undefined;
    const s = this.states.get(id.key);
    // A committed output's own files need no second look (keeps rescans of large trees cheap).
    if (s?.committed && (s.indexPath === path || s.dataPath === path)) return id.key;
    return this.schedule(path);
  }

  /**
   * Where DiskBlockManager puts the data file of an output whose index we know, for when no file
   * event named it: root `hash % roots`, sub-directory by hash, in any `blockmgr-*` there.
   */
  private async findDataFile(state: OutputState, indexPath: string): Promise<string | undefined> {
    const name = shuffleFileName(state.shuffleId, state.mapId, 'data');
    const indexRoot = this.rootOf(indexPath) as string;
    const scope = relative(indexRoot, indexPath).split(sep).slice(0, this.layout.segments.length);
    const placement = localPlacement(name, this.layout.segments.length > 0 ? 1 : this.roots.length);
    const root = this.layout.segments.length > 0 ? indexRoot : (this.roots[placement.dirId] as string);
    const base = join(root, ...scope);
    const dirs = await readdir(base).catch(() => [] as string[]);
    for (const d of dirs.filter((x) => BLOCKMGR.test(x))) {
      const candidate = join(base, d, placement.subDir, name);
      // lstat: a symlink there is not Spark's data file (check() refuses it and says so).
      if (await lstat(candidate).then(() => true, () => false)) {
        state.dataPath = candidate;
        return candidate;
      }
    }
    return undefined;
  }

  /** The `blockmgr-*` directory a file sits in. */
  private blockManagerDirOf(path: string): string {
    const root = this.rootOf(path) as string;
    const parts = relative(root, path).split(sep);
    return join(root, ...parts.slice(0, this.layout.segments.length + 1));
  }

  private scheduleKey(state: OutputState): void {
    if (state.running) {
      state.again = true;
      return;
    }
    state.running = true;
    // Checked on the loop's next turn rather than now: Spark renames an output's index and then
    // its data file, and both events usually arrive in one read. One check then sees both,
    // instead of one that finds the index without its data (and arms a grace timer) and a second.
    const p = new Promise<void>((r) => setImmediate(r))
      .then(() => this.limiter.run(async () => {
        do {
          state.again = false;
          await this.check(state);
        } while (state.again && !this.closed && this.states.get(state.key) === state);
      }))
      .catch((err: unknown) => {
        this.emit('problem', { path: state.indexPath ?? state.key, kind: 'watch-error', message: `check failed: ${String(err)}` });
      })
      .finally(() => {
        state.running = false;
        this.inflight.delete(p);
      });
    this.inflight.add(p);
  }

  private async check(state: OutputState): Promise<void> {
    const { indexPath } = state;
    if (indexPath === undefined) return; // Only a data file so far: the index names the output.
    let indexBytes: Buffer;
    let indexFile: FileIdentity;
    try {
      ({ bytes: indexBytes, identity: indexFile } = await this.readIndex(indexPath));
    } catch (err) {
      if (err instanceof UnsafeFileError) return this.refuse(state, err);
      const code = errorCode(err);
      if (code === 'ENOENT') return this.onGone(state);
      return this.setProblem(state, { path: indexPath, kind: 'unreadable', message: `cannot read ${indexPath}: ${code}` });
    }
    let offsets: number[];
    try {
      offsets = parseIndex(indexBytes);
    } catch (err) {
      if (!(err instanceof InvalidIndexError)) throw err;
      // Spark renames a complete index into place, but another writer may not: report a bad
      // index only if it is still bad after the grace period.
      this.armGraceTimer(state, this.indexProblem(indexPath, err));
      return;
    }
    let dataLength: number | undefined;
    let dataFile: FileIdentity | undefined;
    let dataIdentity = 'none';
    // Normally the data file's own event names it (Spark renames it right after the index); the
    // grace timer looks for it by Spark's placement once that event is overdue. An index that
    // expects no data is looked up at once: a data file made before its directory was watched
    // (a tenant's FIFO, say) is known only to the directory's listing, which may come later.
    if (state.dataPath === undefined && offsets.every((o) => o === 0)) await this.findDataFile(state, indexPath);
    const dataPath = state.dataPath;
    if (dataPath !== undefined) {
      try {
        // Opened, not only stat'ed: the descriptor tells whether a symlinked directory was on
        // the way (an lstat of the path would follow it silently). Nothing is read.
        const { fd, stats } = openCheckedSync(dataPath);
        closeSync(fd);
        dataLength = stats.size;
        dataFile = identityOf(stats);
        dataIdentity = `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeMs}`;
      } catch (err) {
        if (err instanceof UnsafeFileError) return this.refuse(state, err);
        const code = errorCode(err);
        if (code !== 'ENOENT') {
          return this.setProblem(state, { path: dataPath, kind: 'unreadable', message: `cannot stat ${dataPath}: ${code}` });
        }
      }
    }
    try {
      checkCommitted(offsets, dataLength);
    } catch (err) {
      if (!(err instanceof InvalidIndexError)) throw err;
      if (state.committed && dataLength === undefined) {
        // A committed output lost its data file: Spark is removing it (data first, then index).
        return this.onGone(state);
      }
      // Normal between the index rename and the data rename, and while a later attempt replaces
      // the pair; reported only if it lasts.
      this.armGraceTimer(state, { ...this.indexProblem(indexPath, err), kind: 'incomplete' });
      return;
    }
    clearTimeout(state.graceTimer);
    state.graceTimer = undefined;
    state.suspect = undefined;
    if (state.problem) {
      state.problem = undefined;
      this.emit('resolved', state.key);
    }
    // A digest, not the bytes: tens of thousands of outputs stay in memory.
    const identity = `${createHash('sha1').update(indexBytes).digest('base64')}|${indexFile.dev}:${indexFile.ino}|${dataIdentity}`;
    if (state.identity === identity) return;
    const output: MapOutput = {
      id: mapOutputId(state.appId, state.shuffleId, state.mapId),
      appId: state.appId,
      ...(state.namespace === undefined ? {} : { namespace: state.namespace }),
      ...(state.executorId === undefined ? {} : { executorId: state.executorId }),
      shuffleId: state.shuffleId,
      mapId: state.mapId,
      blockManagerDir: this.blockManagerDirOf(indexPath),
      indexPath,
      indexFile,
      indexLength: indexBytes.length,
      ...(dataLength === undefined || dataPath === undefined ? {} : { dataPath, ...(dataFile ? { dataFile } : {}) }),
      dataLength: dataLength ?? 0,
      offsets,
      committedAt: this.opts.now(),
      foundAtStart: !this.initialScanDone,
    };
    state.identity = identity;
    state.committed = output;
    this.emit('committed', output);
  }

  /**
   * The bytes of an index that passes openCheckedSync: a regular file of at most
   * `(maxPartitions + 1) * 8` bytes, opened without following links or blocking. Synchronous
   * for the usual few KiB: a sync read costs ~10 µs where the thread-pool round trips of an
   * async read cost ~70 µs of CPU (measured: 20,000 outputs checked in 7.4 s async); larger
   * ones (up to the cap, 8 MB by default) are read through the pool so the event loop is never
   * held long.
   */
  private async readIndex(path: string): Promise<{ bytes: Buffer; identity: FileIdentity }> {
    const { fd, stats } = openCheckedSync(path, { maxSize: (this.opts.maxPartitions + 1) * 8 });
    try {
      const bytes = stats.size <= SYNC_READ_LIMIT ? readAllSync(fd, stats.size) : await readAsync(fd, stats.size);
      return { bytes, identity: identityOf(stats) };
    } finally {
      closeSync(fd);
    }
  }

  private indexProblem(path: string, err: InvalidIndexError): WatchProblem {
    return { path, kind: err.problem, message: `${path}: ${INDEX_PROBLEM_TEXT[err.problem]}`, detail: err.message };
  }

  /**
   * A file Spark cannot have written (a link, a FIFO, a directory, an index beyond the cap):
   * reported at once and never committed, so nothing waits for it. A later event on the name
   * checks it again, in case the tenant replaced it with a real output.
   */
  private refuse(state: OutputState, err: UnsafeFileError): void {
    clearTimeout(state.graceTimer);
    state.graceTimer = undefined;
    state.suspect = undefined;
    if (state.committed) {
      // A committed output's file was swapped for something unacceptable: forget the output.
      state.committed = undefined;
      state.identity = undefined;
    }
    this.setProblem(state, { path: err.path, kind: err.reason, message: err.message });
  }

  private async onGone(state: OutputState): Promise<void> {
    clearTimeout(state.graceTimer);
    state.graceTimer = undefined;
    const committed = state.committed;
    state.committed = undefined;
    state.identity = undefined;
    state.again = false;
    if (this.states.get(state.key) === state) this.states.delete(state.key);
    if (state.problem) this.emit('resolved', state.key);
    if (!committed) return;
    // Let a recursive delete of the whole tree reach the directory before deciding why it went.
    await new Promise((r) => setTimeout(r, this.opts.removalSettleMs));
    const gone = await lstat(committed.blockManagerDir).then(
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
    state.suspect = problem;
    if (state.graceTimer) return;
    state.graceTimer = setTimeout(() => {
      state.graceTimer = undefined;
      if (this.closed || this.states.get(state.key) !== state || !state.suspect) return;
      const suspect = state.suspect;
      void (async () => {
        // The data file's event may have been missed: look where Spark puts it before blaming input.
        if (state.dataPath === undefined && state.indexPath !== undefined && (await this.findDataFile(state, state.indexPath))) {
          this.scheduleKey(state);
          return;
        }
        // Still inconsistent after the grace period: report the latest problem and look again.
        this.setProblem(state, suspect);
        this.scheduleKey(state);
      })();
    }, this.opts.incompleteGraceMs);
    state.graceTimer.unref();
  }
}

/**
 * Whether a name can be an output's index or data file: the first, cheap test of every file event
 * (isRelevant parses the whole path afterwards). Counted on a real Spark 3.5 map stage with 200
 * reducers: each map task raised about 810 events on scratch files (200 `temp_shuffle_*` files
 * created, written and deleted; its attempt files written partition by partition) for 2 on its
 * output's index and data.
 */
function isOutputFileName(name: string): boolean {
  return name.startsWith('shuffle_') && (name.endsWith('.index') || name.endsWith('.data'));
}

/**
 * isOutputFileName for inotifywait's `--include` (POSIX ERE on the whole path): the last
 * component starts with `shuffle_` and ends in `.index` or `.data`. The empty alternative lets a
 * queue overflow through (it names no path). Anchored at both ends: glibc's matcher then makes one
 * pass over a path, where an unanchored alternative was tried from every position (a fifth less
 * CPU for the child on scratch-file deletions, bench/RESULTS.md).
 */
const OUTPUT_FILE_PATH_ERE = '^(|.*/shuffle_[^/]*\\.(index|data))$';

/** `size` bytes from the start of `fd`, or fewer when the file is shorter (parseIndex decides). */
function readAllSync(fd: number, size: number): Buffer {
  const buf = Buffer.allocUnsafe(size);
  let got = 0;
  while (got < size) {
    const n = readSync(fd, buf, got, size - got, got);
    if (n === 0) break;
    got += n;
  }
  return got === size ? buf : buf.subarray(0, got);
}

async function readAsync(fd: number, size: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(size);
  let got = 0;
  while (got < size) {
    const n = await new Promise<number>((resolve, reject) => fsRead(fd, buf, got, size - got, got, (err, bytesRead) => (err ? reject(err) : resolve(bytesRead))));
    if (n === 0) break;
    got += n;
  }
  return got === size ? buf : buf.subarray(0, got);
}
