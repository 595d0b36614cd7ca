/**
 * The queue from watcher to store. Every committed map output is copied to the store, data
 * object first and index second (the index is the commit marker Spark's reader trusts), with
 * bounded concurrency and retries. Stored copies are never deleted because local files went
 * away: Spark deletes the whole `blockmgr-*` tree when an executor stops, which is exactly when
 * the copies are needed. To survive that, the queue holds the files of pending outputs open, so
 * their bytes can still be read after Spark unlinks them.
 */
import { EventEmitter, setMaxListeners } from 'node:events';
import type { Logger } from 'pino';
import type { BlockStore, LocalFile, ReadHandle } from '../store/block-store.js';
import { StoreError } from '../store/block-store.js';
import { fallbackKey, type FallbackLayout } from '../spark/fallback-key.js';
import { shuffleFileName } from '../spark/file-names.js';
import type { MapOutput } from '../watch/map-output.js';
import type { RemovedOutput } from '../watch/local-dir-watcher.js';
import { backoffDelay, type BackoffPolicy } from '../util/backoff.js';
import { describeError, errorCode } from '../util/errors.js';
import { Heap } from '../util/heap.js';
import { fdHandle } from '../store/fd-handle.js';
import { openCheckedSync, UnsafeFileError } from '../util/safe-file.js';

/**
 * Order in which queued outputs are written:
 * - `fifo`: as committed;
 * - `smallest-first`: fewest bytes left to write first (an output whose data is stored needs only its index);
 * - `index-first`: outputs whose data is already stored (only the index, the commit marker, is missing) first, then FIFO;
 * - `oldest-shuffle-first`: lowest shuffle id (the oldest shuffle) first, then FIFO.
 */
export type WriteOrder = 'fifo' | 'smallest-first' | 'index-first' | 'oldest-shuffle-first';
export const WRITE_ORDERS: readonly WriteOrder[] = ['fifo', 'smallest-first', 'index-first', 'oldest-shuffle-first'];

/** The store methods the queue uses. */
export type WritebackStore = Pick<BlockStore, 'put' | 'holds'>;

export type OutputPhase = 'queued' | 'uploading' | 'retrying' | 'persisted';

/** What the queue reports to metrics; main.ts wires prom-client behind it. */
export interface WritebackMetrics {
  filePersisted(bytes: number): void;
  outputPersisted(lagSeconds: number): void;
  writeError(kind: string): void;
  dropped(reason: string): void;
  skippedAlreadyStored(files: number): void;
}

export interface WritebackOptions {
  store: WritebackStore;
  layout?: FallbackLayout;
  /** Outputs written at once. */
  concurrency?: number;
  /** Outputs whose files are held open while pending (two descriptors each). */
  maxHeldOutputs?: number;
  retry?: BackoffPolicy;
  order?: WriteOrder;
  logger?: Logger;
  metrics?: WritebackMetrics;
  now?: () => number;
  /**
   * Asked before each write of an output: whether it may be written at all (its tenant owns the
   * app id in the store). False drops it (`refused`); a rejection is retried like a transient
   * failure. The files are held open meanwhile, as for any pending output.
   */
  admit?: (output: MapOutput) => Promise<boolean>;
  /**
   * How long a persisted output is remembered after its local files went away with its
   * executor's directory (default 1 h). Then it is forgotten: listed and served from the store as
   * any output the agent never saw (the stored index gives its offsets). Without it a node agent
   * would keep every output of every executor it ever watched: 2 KiB each with 200 partitions,
   * 16 KiB with 2000 (bench:writeback-memory).
   */
  forgetGoneAfterMs?: number;
}

export interface FailedOutput {
  id: string;
  file: string;
  kind: string;
  code: string;
  error: string;
  attempts: number;
  since: string;
}

export interface WritebackStatus {
  pendingOutputs: number;
  pendingFiles: number;
  pendingBytes: number;
  uploadingOutputs: number;
  /** Pending outputs whose files are held open (their bytes survive Spark deleting them). */
  heldOutputs: number;
  persistedOutputs: number;
  persistedFiles: number;
  persistedBytes: number;
  failedFiles: number;
  droppedOutputs: number;
  failed: FailedOutput[];
  /** Outputs dropped because a local file was refused (`bad-input`), and the latest of them. */
  rejectedOutputs: number;
  rejected: FailedOutput[];
}

export interface WritebackEvents {
  /** Pending work changed (an output was queued, persisted or dropped). */
  change: [];
  persisted: [MapOutput];
}

interface Entry {
  output: MapOutput;
  seq: number;
  phase: OutputPhase;
  /** Set when a newer commit replaced the output while it was being written. */
  dirty: boolean;
  handles?: { index: ReadHandle; data?: ReadHandle };
  /** True while its files are being opened (one opening at a time). */
  holding?: boolean;
  dataStored: boolean;
  attempts: number;
  lastError?: FailedOutput;
  retryTimer?: NodeJS.Timeout;
  /** Whether the files still exist locally (false after the executor's directory went away). */
  local: boolean;
  /** When a persisted output's files went away with its executor's directory: it is forgotten
   * `forgetGoneAfterMs` later. */
  goneAt?: number;
}

/** A map output as the queue knows it: for listing and serving. */
export interface OutputView {
  output: MapOutput;
  phase: OutputPhase;
  local: boolean;
  /** An open handle on each file while the output is pending (readable even after deletion). */
  handles?: { index: ReadHandle; data?: ReadHandle };
}

export class WritebackQueue extends EventEmitter<WritebackEvents> {
  private readonly entries = new Map<string, Entry>();
  /** Entries waiting to be written; a stale entry (no longer queued) is skipped when popped. */
  private readonly queue = new Heap<Entry>((a, b) => this.compare(a, b));
  /** Outputs holding one of the `concurrency` slots: those whose data is being written. */
  private running = 0;
  /** Writes under way, slot or not (an index PUT runs after its output gave the slot up). */
  private writing = 0;
  private seq = 0;
  /** Outputs whose descriptors are open now (what `heldOutputs` reports). */
  private held = 0;
  /** Outputs whose descriptors are being opened: they count against the cap too. */
  private holding = 0;
  private closed = false;
  private closing: Promise<void> | undefined;
  private paused = false;
  private persistedOutputs = 0;
  private persistedFiles = 0;
  private persistedBytes = 0;
  private droppedOutputs = 0;
  /** Outputs refused for bad input (`bad-input`): the latest few, for the status. */
  private readonly rejected: FailedOutput[] = [];
  private rejectedOutputs = 0;
  /** Entries not yet persisted: idleness, pending lists and status without walking every output
   * ever seen (tens of thousands, checked after every write while a drain waits). */
  private readonly unsettled = new Set<Entry>();
  private idleWaiters: Array<() => void> = [];
  /** Persisted outputs whose executor's directory went away, in the order they went, from
   * `goneHead` on: each is forgotten when its `at` is `forgetGoneAfterMs` old (if it has not come
   * back meanwhile; a record whose entry went again later is skipped). */
  private readonly gone: Array<{ entry: Entry; at: number }> = [];
  private goneHead = 0;
  private forgetTimer: NodeJS.Timeout | undefined;
  /** Aborted by close(): writes under way stop (the store leaves no partial object). */
  private readonly writes = new AbortController();
  private readonly opts: Required<Omit<WritebackOptions, 'logger' | 'metrics' | 'admit'>> & Pick<WritebackOptions, 'logger' | 'metrics' | 'admit'>;

  constructor(options: WritebackOptions) {
    super();
    // Every write under way listens on the close signal: as many as the (drain) concurrency.
    setMaxListeners(0, this.writes.signal);
    this.opts = {
      layout: 'spark-3.3',
      concurrency: 4,
      maxHeldOutputs: 2048,
      retry: { baseMs: 200, maxMs: 30_000 },
      order: 'fifo',
      now: Date.now,
      forgetGoneAfterMs: 3_600_000,
      ...options,
    };
  }

  get order(): WriteOrder {
    return this.opts.order;
  }

  /** Change the write order; the queue is re-sorted at once. */
  setOrder(order: WriteOrder): void {
    this.opts.order = order;
    this.queue.rebuild((e) => e.phase === 'queued');
  }

  /** Hold writes back (outputs still queue up), e.g. while the start-up scan reads every index. */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.pump();
  }

  /** Change how many outputs are written at once (raised while draining). */
  setConcurrency(concurrency: number): void {
    this.opts.concurrency = concurrency;
    this.pump();
  }

  /** A committed output from the watcher: queue it (again, if it changed). */
  add(output: MapOutput): void {
    if (this.closed) return;
    const existing = this.entries.get(output.id);
    if (existing) {
      existing.output = output;
      existing.local = true;
      existing.goneAt = undefined;
      this.unsettled.add(existing);
      if (existing.phase === 'uploading') {
        existing.dirty = true;
        return;
      }
      if (existing.phase === 'retrying') {
        clearTimeout(existing.retryTimer);
      }
      if (existing.phase === 'queued') {
        // Still in the heap: written once, with the newer output. Descriptors held on the
        // replaced files would read old bytes: let go of them (the write reads by path).
        existing.dataStored = false;
        void this.releaseHandles(existing);
        return;
      }
      existing.dataStored = false;
      existing.attempts = 0;
      existing.lastError = undefined;
      void this.releaseHandles(existing).then(() => this.enqueue(existing));
      return;
    }
    const entry: Entry = { output, seq: this.seq++, phase: 'queued', dirty: false, dataStored: false, attempts: 0, local: true };
    this.entries.set(output.id, entry);
    this.enqueue(entry);
  }

  /** The watcher saw an output's files deleted. */
  removed(event: RemovedOutput): void {
    const entry = this.entries.get(event.output.id);
    if (!entry) return;
    entry.local = false;
    if (event.blockManagerDirGone) {
      // The executor stopped: keep writing from the held descriptors; this is when copies matter.
      this.opts.logger?.info({ output: entry.output.id, phase: entry.phase }, 'executor directory removed; output kept');
      if (entry.phase === 'persisted') this.markGone(entry);
      return;
    }
    // Spark cleaned the shuffle up: nobody will read it again. Pending work for it is dropped;
    // what is stored stays (Spark never deletes fallback copies per shuffle either).
    if (entry.phase === 'queued' || entry.phase === 'retrying') {
      this.drop(entry, 'cleaned-up');
    } else if (entry.phase === 'persisted') {
      this.entries.delete(entry.output.id);
    }
    // An output being written finishes: the bytes are already being read through held handles.
  }

  /** Look up one output. */
  get(id: string): OutputView | undefined {
    const e = this.entries.get(id);
    return e && { output: e.output, phase: e.phase, local: e.local, ...(e.handles ? { handles: e.handles } : {}) };
  }

  /** Every output known, optionally for one app. */
  list(appId?: string): OutputView[] {
    const out: OutputView[] = [];
    for (const e of this.entries.values()) {
      if (appId === undefined || e.output.appId === appId) out.push({ output: e.output, phase: e.phase, local: e.local });
    }
    return out;
  }

  /** App ids with at least one known output. */
  apps(): string[] {
    return [...new Set([...this.entries.values()].map((e) => e.output.appId))];
  }

  /** Outputs not yet persisted, in the order they would be written. */
  pending(): MapOutput[] {
    const out: MapOutput[] = [];
    for (const e of this.unsettled) out.push(e.output);
    return out;
  }

  status(): WritebackStatus {
    let pendingOutputs = 0;
    let pendingFiles = 0;
    let pendingBytes = 0;
    let uploadingOutputs = 0;
    const failed: FailedOutput[] = [];
    for (const e of this.unsettled) {
      pendingOutputs++;
      const files = filesOf(e.output).filter((f) => !(f.type === 'data' && e.dataStored));
      pendingFiles += files.length;
      for (const f of files) pendingBytes += f.size;
      if (e.phase === 'uploading') uploadingOutputs++;
      if (e.lastError) failed.push(e.lastError);
    }
    return {
      pendingOutputs,
      pendingFiles,
      pendingBytes,
      uploadingOutputs,
      heldOutputs: this.held,
      persistedOutputs: this.persistedOutputs,
      persistedFiles: this.persistedFiles,
      persistedBytes: this.persistedBytes,
      failedFiles: failed.length,
      droppedOutputs: this.droppedOutputs,
      failed: failed.slice(0, 100),
      rejectedOutputs: this.rejectedOutputs,
      rejected: [...this.rejected],
    };
  }

  /** True when nothing committed is waiting to be written. */
  isIdle(): boolean {
    return this.unsettled.size === 0;
  }

  /** Resolves when nothing is pending (at once if nothing is), or when `signal` aborts. */
  whenIdle(signal?: AbortSignal): Promise<void> {
    if (this.isIdle() || signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        signal?.removeEventListener('abort', done);
        resolve();
      };
      this.idleWaiters.push(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  /** Cap the backoff between attempts from now on (a drain has a deadline). */
  setMaxRetryDelay(ms: number): void {
    this.opts.retry = { ...this.opts.retry, maxMs: Math.min(this.opts.retry.maxMs, ms), baseMs: Math.min(this.opts.retry.baseMs, ms) };
  }

  /** Retry every output waiting on a backoff timer now (a drain has no time to wait). */
  retryNow(): void {
    for (const e of this.unsettled) {
      if (e.phase === 'retrying') {
        clearTimeout(e.retryTimer);
        this.enqueue(e);
      }
    }
  }

  /** Stop starting new writes, abort the running ones and wait for them, release every held
   * descriptor. Outputs not stored stay in `pending()`, for the exit accounting. Memoised: every
   * caller waits for the one close to finish. */
  close(): Promise<void> {
    this.closing ??= this.closeOnce();
    return this.closing;
  }

  private async closeOnce(): Promise<void> {
    this.closed = true;
    clearTimeout(this.forgetTimer);
    for (const e of this.entries.values()) clearTimeout(e.retryTimer);
    this.queue.clear();
    const underWay = [...this.entries.values()].filter((e) => e.phase === 'uploading');
    this.writes.abort(new Error('write-back queue closed'));
    while (this.writing > 0) await new Promise((r) => this.once('change', () => r(undefined)));
    // A write aborted after the store had taken the index (only the answer was lost) did land:
    // look, so that `pending()` is exact for the exit accounting. The index is the commit marker
    // and is written after the data, so a stored index means a stored output.
    await Promise.all(
      underWay
        .filter((e) => e.phase !== 'persisted')
        .map(async (e) => {
          const index = filesOf(e.output).find((f) => f.type === 'index') as OutputFile;
          const handles = e.handles ?? (await openFiles(e.output).catch(() => undefined));
          if (!handles) return;
          const landed = await this.store
            .holds(this.key(e.output, index.name), localFile(handles, index))
            .catch(() => false)
            .finally(() => (handles === e.handles ? undefined : Promise.allSettled([handles.index.close(), handles.data?.close()])));
          if (landed) this.finish(e, e.output, 0);
        }),
    );
    await Promise.all([...this.entries.values()].map((e) => this.releaseHandles(e)));
  }

  private readonly compare = (a: Entry, b: Entry): number => {
    switch (this.opts.order) {
      case 'smallest-first':
        return bytesLeft(a) - bytesLeft(b) || a.seq - b.seq;
      case 'index-first':
        return Number(b.dataStored) - Number(a.dataStored) || a.seq - b.seq;
      case 'oldest-shuffle-first':
        return a.output.shuffleId - b.output.shuffleId || a.seq - b.seq;
      default:
        return a.seq - b.seq;
    }
  };

  private enqueue(entry: Entry): void {
    if (this.closed) return;
    entry.phase = 'queued';
    entry.dirty = false;
    this.unsettled.add(entry);
    this.queue.push(entry);
    if (!entry.handles && !entry.holding && entry.local && this.held + this.holding < this.opts.maxHeldOutputs) void this.holdHandles(entry);
    this.emit('change');
    this.pump();
  }

  private pump(): void {
    while (!this.closed && !this.paused && this.running < this.opts.concurrency) {
      const entry = this.queue.pop();
      if (!entry) break;
      if (entry.phase !== 'queued' || this.entries.get(entry.output.id) !== entry) continue; // dropped meanwhile
      this.running++;
      this.writing++;
      entry.phase = 'uploading';
      let holdsSlot = true;
      const releaseSlot = (): void => {
        if (!holdsSlot) return;
        holdsSlot = false;
        this.running--;
        this.pump();
      };
      void this.write(entry, releaseSlot).finally(() => {
        releaseSlot();
        this.writing--;
        this.emit('change');
        this.checkIdle();
        this.pump();
      });
    }
  }

  /**
   * Open the output's files so that Spark deleting them loses nothing. Counted as held only once
   * both are open: `heldOutputs` never claims descriptors that are still being opened.
   */
  private async holdHandles(entry: Entry): Promise<void> {
    entry.holding = true;
    this.holding++;
    const { output } = entry;
    try {
      const { index, data } = await openFiles(output);
      if (entry.handles || entry.phase === 'persisted' || !this.entries.has(output.id) || entry.output !== output) {
        // Raced with completion or a newer commit: not needed.
        await index.close();
        await data?.close();
        return;
      }
      entry.handles = data ? { index, data } : { index };
      this.held++;
    } catch {
      // Gone, or not acceptable: the write opens the files again, finds out and says so.
    } finally {
      entry.holding = false;
      this.holding--;
    }
    // A newer commit arrived while the older files were being opened: hold the new ones.
    if (entry.output !== output && !entry.handles && entry.local && entry.phase !== 'persisted' && this.entries.get(entry.output.id) === entry) {
      if (this.held + this.holding < this.opts.maxHeldOutputs) await this.holdHandles(entry);
    }
  }

  private async releaseHandles(entry: Entry): Promise<void> {
    const h = entry.handles;
    if (!h) return;
    entry.handles = undefined;
    this.held--;
    await Promise.allSettled([h.index.close(), h.data?.close()]);
  }

  /**
   * Write one output, data before index. Once the index PUT is under way the output gives its
   * slot up (`releaseSlot`), so the next output's data goes out while this index is in flight:
   * an output costs one request's latency of its slot instead of two, which matters most for the
   * many small outputs of a wide shuffle. The index is still sent only after the data is stored.
   */
  private async write(entry: Entry, releaseSlot: () => void): Promise<void> {
    const output = entry.output;
    const { store } = this;
    entry.attempts++;
    const files = filesOf(output);
    let currentFile = files[0]?.name ?? '';
    // Stores read only through descriptors opened here with the checks (never by a tenant's
    // path): the held ones, or, beyond --max-held-outputs, ones opened for this attempt.
    let own: Handles | undefined;
    try {
      if (this.opts.admit && !(await this.opts.admit(output))) {
        this.opts.logger?.warn({ output: output.id }, 'output refused: another tenant owns its app id in the store; dropped');
        this.drop(entry, 'refused');
        return;
      }
      if (!entry.handles) own = await openFiles(output);
      const handles = (entry.handles ?? own) as Handles;
      // After a restart, what is already stored intact is not sent again.
      if (output.foundAtStart && entry.attempts === 1) {
        let skipped = 0;
        for (const f of files) {
          if (await store.holds(this.key(output, f.name), localFile(handles, f))) skipped++;
          else break;
        }
        if (skipped === files.length) {
          this.opts.metrics?.skippedAlreadyStored(files.length);
          this.finish(entry, output, 0);
          return;
        }
      }
      let bytes = 0;
      for (const f of files) {
        if (f.type === 'data' && entry.dataStored) continue;
        currentFile = f.name;
        // Opening the files awaited: a close may have aborted the writes meanwhile, and a store
        // never hears of an abort that happened before its request began.
        this.writes.signal.throwIfAborted();
        const put = store.put(this.key(output, f.name), localFile(handles, f), { signal: this.writes.signal });
        // Started first, then the slot is freed: the index request goes out before the next output's data.
        if (f.type === 'index') releaseSlot();
        await put;
        bytes += f.size;
        this.persistedFiles++;
        this.persistedBytes += f.size;
        this.opts.metrics?.filePersisted(f.size);
        if (f.type === 'data') entry.dataStored = true;
      }
      this.finish(entry, output, bytes);
    } catch (err) {
      this.fail(entry, currentFile, err);
    } finally {
      if (own) await Promise.allSettled([own.index.close(), own.data?.close()]);
    }
  }

  private get store(): WritebackStore {
    return this.opts.store;
  }

  private key(output: MapOutput, fileName: string): string {
    return fallbackKey(output.appId, output.shuffleId, fileName, this.opts.layout);
  }


  private finish(entry: Entry, output: MapOutput, bytes: number): void {
    if (entry.dirty && entry.output !== output) {
      // A newer commit arrived while this one was written: write that one too.
      entry.dataStored = false;
      entry.attempts = 0;
      void this.releaseHandles(entry).then(() => this.enqueue(entry));
      return;
    }
    entry.phase = 'persisted';
    this.unsettled.delete(entry);
    entry.lastError = undefined;
    this.persistedOutputs++;
    const lag = Math.max(0, this.opts.now() - output.committedAt) / 1000;
    this.opts.metrics?.outputPersisted(lag);
    this.opts.logger?.debug({ output: output.id, bytes, lagSeconds: lag }, 'output persisted');
    if (!entry.local) this.markGone(entry);
    void this.releaseHandles(entry);
    this.emit('persisted', output);
  }

  private fail(entry: Entry, file: string, err: unknown): void {
    if (this.closed) {
      // Aborted by close(): not a store failure; the output stays pending.
      entry.phase = 'queued';
      return;
    }
    const kind = err instanceof StoreError ? err.kind : 'transient';
    const code = err instanceof StoreError ? err.code : errorCode(err, 'ERROR');
    this.opts.metrics?.writeError(kind);
    if (kind === 'bad-input') {
      if (entry.dirty) {
        // A newer commit replaced the files while this one was written: that one may be fine.
        this.enqueue(entry);
        return;
      }
      // A file swapped for a link (or a FIFO, or another inode) after the watcher checked it:
      // retrying cannot help, and a drain must not wait for it. Reported, then dropped.
      this.rejected.push({ id: entry.output.id, file, kind, code, error: describeError(err), attempts: entry.attempts, since: new Date(this.opts.now()).toISOString() });
      if (this.rejected.length > MAX_REJECTED) this.rejected.shift();
      this.rejectedOutputs++;
      this.opts.logger?.warn({ output: entry.output.id, file, code, err }, 'local file refused; output dropped');
      this.drop(entry, 'bad-input');
      return;
    }
    if (kind === 'source-gone' && !entry.handles) {
      // Spark removed the files before we could copy them and nothing held them open.
      this.opts.logger?.warn({ output: entry.output.id, file, local: entry.local, err }, 'local files vanished before write-back; dropped');
      this.drop(entry, 'source-gone');
      return;
    }
    const message = describeError(err);
    entry.lastError = {
      id: entry.output.id,
      file,
      kind,
      code,
      error: message,
      attempts: entry.attempts,
      since: entry.lastError?.since ?? new Date(this.opts.now()).toISOString(),
    };
    const delay = backoffDelay(entry.attempts, this.opts.retry);
    this.opts.logger?.warn({ output: entry.output.id, file, kind, code, attempts: entry.attempts, retryInMs: delay, err }, 'write-back failed; will retry');
    if (this.closed) return;
    entry.phase = 'retrying';
    entry.retryTimer = setTimeout(() => {
      entry.retryTimer = undefined;
      if (entry.phase === 'retrying') this.enqueue(entry);
    }, delay);
  }

  private drop(entry: Entry, reason: string): void {
    clearTimeout(entry.retryTimer);
    this.entries.delete(entry.output.id);
    this.unsettled.delete(entry);
    this.droppedOutputs++;
    this.opts.metrics?.dropped(reason);
    void this.releaseHandles(entry);
    this.emit('change');
    this.checkIdle();
  }

  /** A persisted output's files went away with its executor: forget it in `forgetGoneAfterMs`. */
  private markGone(entry: Entry): void {
    const at = this.opts.now();
    entry.goneAt = at;
    this.gone.push({ entry, at });
    this.scheduleForget();
  }

  private scheduleForget(): void {
    const first = this.gone[this.goneHead];
    if (this.forgetTimer || this.closed || !first) return;
    // At most one sweep a second: outputs of one executor go within moments of each other.
    const due = Math.max(1000, first.at + this.opts.forgetGoneAfterMs - this.opts.now());
    this.forgetTimer = setTimeout(() => {
      this.forgetTimer = undefined;
      this.forgetGone();
    }, due);
    this.forgetTimer.unref();
  }

  /** Forget the persisted outputs gone for `forgetGoneAfterMs` (public for tests with a clock). */
  forgetGone(): void {
    const now = this.opts.now();
    let forgotten = 0;
    for (let g = this.gone[this.goneHead]; g && now - g.at >= this.opts.forgetGoneAfterMs; g = this.gone[this.goneHead]) {
      this.goneHead++;
      const e = g.entry;
      if (e.goneAt === g.at && e.phase === 'persisted' && !e.local && this.entries.get(e.output.id) === e) {
        this.entries.delete(e.output.id);
        forgotten++;
      }
    }
    if (this.goneHead > 1024 && this.goneHead * 2 > this.gone.length) {
      this.gone.splice(0, this.goneHead);
      this.goneHead = 0;
    }
    if (forgotten > 0) this.opts.logger?.debug({ forgotten, remembered: this.entries.size }, 'stored outputs of gone executors forgotten; served from the store');
    this.scheduleForget();
  }

  private checkIdle(): void {
    if (this.idleWaiters.length === 0 || !this.isIdle()) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}

/** At most this many refused outputs are kept for the status (they are logged and counted too). */
const MAX_REJECTED = 100;

interface Handles {
  index: ReadHandle;
  data?: ReadHandle;
}

/**
 * Open an output's files with the checks of util/safe-file.ts, requiring the inodes the watcher
 * checked. ENOENT is source-gone; a refused or no longer readable file is `bad-input`.
 * Synchronously, as the watcher does: see store/fd-handle.ts.
 */
async function openFiles(output: MapOutput): Promise<Handles> {
  const opened = (path: string, expected: MapOutput['indexFile']): ReadHandle => {
    try {
      return fdHandle(openCheckedSync(path, expected ? { expected } : {}).fd);
    } catch (err) {
      // No cause: the message says it all (describeError would repeat it).
      if (err instanceof UnsafeFileError) throw new StoreError(`local file refused: ${err.message}`, 'bad-input', err.reason);
      if (errorCode(err) === 'ENOENT') throw new StoreError(`local file ${path} is gone`, 'source-gone', 'ENOENT', { cause: err });
      // The watcher read it, so the tenant took the permission away since: only they can undo it.
      if (errorCode(err) === 'EACCES' || errorCode(err) === 'EPERM') throw new StoreError(`local file refused: ${path} is not readable`, 'bad-input', errorCode(err), { cause: err });
      throw new StoreError(`cannot open local file ${path}: ${errorCode(err)}`, 'transient', errorCode(err), { cause: err });
    }
  };
  const index = opened(output.indexPath, output.indexFile);
  if (output.dataPath === undefined) return { index };
  try {
    return { index, data: opened(output.dataPath, output.dataFile) };
  } catch (err) {
    await index.close().catch(() => undefined);
    throw err;
  }
}

function localFile(handles: Handles, f: OutputFile): LocalFile {
  const handle = f.type === 'index' ? handles.index : handles.data;
  return handle ? { path: f.path, size: f.size, handle } : { path: f.path, size: f.size };
}

interface OutputFile {
  type: 'data' | 'index';
  name: string;
  path: string;
  size: number;
}

function bytesLeft(entry: Entry): number {
  return (entry.dataStored ? 0 : entry.output.dataLength) + entry.output.indexLength;
}

/** The files to store for an output: data (when Spark wrote one) before index. */
function filesOf(output: MapOutput): OutputFile[] {
  const files: OutputFile[] = [];
  if (output.dataPath !== undefined) {
    files.push({ type: 'data', name: shuffleFileName(output.shuffleId, output.mapId, 'data'), path: output.dataPath, size: output.dataLength });
  }
  files.push({ type: 'index', name: shuffleFileName(output.shuffleId, output.mapId, 'index'), path: output.indexPath, size: output.indexLength });
  return files;
}
