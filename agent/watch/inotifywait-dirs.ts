/**
 * File events of a set of directories from one `inotifywait` child process (Debian's
 * inotify-tools), for the directories where Spark writes its files.
 *
 * Why a child process: Node's `fs.watch` asks inotify for every kind of change (writes and
 * attribute changes included) and hands each event to JavaScript. Spark's bypass-merge-sort
 * writer creates, writes and deletes one `temp_shuffle_*` scratch file per reducer next to each
 * output: about 810 events per output, each costing the agent ~16 µs of CPU (bench/RESULTS.md,
 * bench:spark-overhead). inotifywait asks the kernel only for the kinds given here (no IN_MODIFY,
 * no IN_ATTRIB) and drops every event whose path fails `include` in C, before anything is
 * written to the pipe, so Node sees the outputs' own events and nothing else.
 *
 * What it cannot do, and how that is covered:
 * - It watches a fixed list (no `-r`: recursion follows a directory symlink a tenant plants, and
 *   would watch whatever tree it points to). The caller (TreeWatch) decides which directories
 *   are watched, with its lstat checks and caps; a new list means a new child. The new child
 *   is started before the old one is stopped (2 s after the new one has its watches, so that
 *   the old one reads what it had queued) and `add()` resolves only once the new child has its
 *   watches, so the caller's listing after `add()` covers anything created before.
 * - A child that dies, or a kernel queue overflow (`Q_OVERFLOW`, reported with an empty path,
 *   which `include` must let through), loses events: `onLost` asks the caller to list every
 *   directory again, after a new child has its watches.
 * - When a child cannot be started (binary gone, watch limit reached) three times in a row,
 *   `add()` rejects from then on, and the caller falls back to `fs.watch`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { lstat } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { setPriority } from 'node:os';

export interface DirEventSink {
  /** `name` in watched `dir` was renamed in or out, or deleted (the kinds in EVENTS). */
  onEvent: (dir: string, name: string) => void;
  /** Events may have been lost (queue overflow, the child restarted): list every directory again. */
  onLost: (reason: string) => void;
  /** Something the operator should know (the child died, could not start). */
  onError: (message: string) => void;
}

export interface InotifywaitDirsOptions {
  /** Path of the inotifywait binary. */
  binary: string;
  /** POSIX extended regular expression on the full path: events of other paths are dropped in
   * the child. Must match the empty string too (a queue overflow names no path). */
  include: string;
  /** How long to gather new directories before starting the first child. */
  batchMs?: number;
  /** How long to gather new directories before replacing a running child (default 250 ms). */
  rebatchMs?: number;
  /** Consecutive failures to start a child before giving up (add() rejects from then on). */
  maxStartFailures?: number;
  /** How long a replaced child keeps reading the events queued before its successor's watches. */
  retireMs?: number;
  /** The child's nice value (default 10; higher is lower priority). */
  nice?: number;
}

/**
 * The kernel mask: renames in and out (Spark commits every index and data file by a rename) and
 * deletions; not creations, writes, closes or attribute changes. Each kind asked for is one more
 * event per scratch file, each waking the child in the writer's system time: with creations and
 * closes after writing too, the child cost 5 times as much CPU on the bypass-merge-sort pattern
 * (bench/RESULTS.md). A file written in place or a link made under an output's name is seen by
 * the next listing (the periodic rescan, or the grace-timer lookup of a data file by Spark's
 * placement), never committed without being checked. `q_overflow` is not a mask bit (the kernel
 * always reports an overflow) but inotifywait prints only the kinds it was asked for.
 */
const EVENTS = ['moved_to', 'moved_from', 'delete', 'q_overflow'];

interface Child {
  process: ChildProcess;
  established: boolean;
  stopping: boolean;
}

interface Waiter {
  dir: string;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class InotifywaitDirs {
  private readonly dirs = new Set<string>();
  private waiters: Waiter[] = [];
  private current: Child | undefined;
  /** Replaced children, still reading what they had queued. */
  private readonly retiring = new Set<Child>();
  private starting: Child | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** A new list is wanted while a child is starting: start another once it is up. */
  private dirty = false;
  private failures = 0;
  private brokenReason: string | undefined;
  private closed = false;
  private lostOnStart: string | undefined;
  /** Children started (the first included) and how many of them died unasked. */
  readonly stats = { started: 0, died: 0, overflows: 0 };

  constructor(
    private readonly options: InotifywaitDirsOptions,
    private readonly sink: DirEventSink,
  ) {}

  /** Whether a child runs or starts: a directory added now waits for the next child (`rebatchMs`). */
  get replacing(): boolean {
    return this.current !== undefined || this.starting !== undefined;
  }

  /** Whether add() has given up (its reason), so that callers use fs.watch. */
  get broken(): string | undefined {
    return this.brokenReason;
  }

  /** Watch `dir`; resolves once a child has its watch, rejects if no child can be started. */
  add(dir: string): Promise<void> {
    if (this.brokenReason !== undefined) return Promise.reject(new Error(this.brokenReason));
    // --fromfile reads one path per line, and a leading '@' would mean "exclude".
    if (!isAbsolute(dir) || dir.includes('\n')) return Promise.reject(new Error(`inotifywait cannot watch ${JSON.stringify(dir)}`));
    this.dirs.add(dir);
    return new Promise((resolve, reject) => {
      this.waiters.push({ dir, resolve, reject });
      this.schedule();
    });
  }

  /** Stop reporting `dir` (its watch goes with the next child, or with the directory). */
  remove(dir: string): void {
    this.dirs.delete(dir);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    for (const c of [this.current, this.starting, ...this.retiring]) if (c) this.stop(c);
    this.retiring.clear();
    for (const w of this.waiters.splice(0)) w.resolve();
  }

  /**
   * Start a child with the current list after a while. Replacing a running child waits longer:
   * an executor creates its `NN` directories in bursts (one per file its first tasks place
   * there), and every child is a fork of the agent: with 250 ms instead of 10, bench:spark-overhead's
   * job (3 executors) started 8-11 children instead of 19. A directory's files made meanwhile are
   * found by the caller's listing once `add()` resolves.
   */
  private schedule(delayMs = this.current ? (this.options.rebatchMs ?? 250) : (this.options.batchMs ?? 10)): void {
    if (this.closed) return;
    if (this.starting) {
      this.dirty = true;
      return;
    }
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.startChild();
    }, delayMs);
  }

  private startChild(): void {
    if (this.closed) return;
    const list = [...this.dirs];
    const waiters = this.waiters.splice(0);
    if (list.length === 0) {
      if (this.current) this.stop(this.current);
      this.current = undefined;
      for (const w of waiters) w.resolve();
      return;
    }
    const args = ['-m', '-P', '--fromfile', '-', ...EVENTS.flatMap((e) => ['-e', e]), '--include', this.options.include, '--format', '%e %w%f%0', '--no-newline'];
    let proc: ChildProcess;
    try {
      proc = spawn(this.options.binary, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (err) {
      this.startFailed(list, waiters, `cannot start ${this.options.binary}: ${String(err)}`);
      return;
    }
    const child: Child = { process: proc, established: false, stopping: false };
    // A lower CPU priority than the executors': woken less eagerly on a busy node, the child reads
    // many deletions per wake-up (half its CPU on the scratch-file pattern at load 6-8). What it
    // passes on (a few events per output) reaches the agent, which keeps its own priority.
    if (proc.pid !== undefined) {
      try {
        setPriority(proc.pid, this.options.nice ?? 10);
      } catch {
        // Not allowed here (a seccomp profile, say): the child runs at the agent's priority.
      }
    }
    this.starting = child;
    this.stats.started++;
    let stderr = '';
    let pending: Buffer = Buffer.alloc(0);
    proc.stdout?.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      let start = 0;
      for (let nul = pending.indexOf(0, start); nul >= 0; nul = pending.indexOf(0, start)) {
        this.onRecord(pending.toString('utf8', start, nul));
        start = nul + 1;
      }
      pending = start === pending.length ? Buffer.alloc(0) : pending.subarray(start);
    });
    proc.stderr?.setEncoding('utf8');
    proc.stderr?.on('data', (text: string) => {
      // Bounded: only the start-up messages and a last error matter.
      stderr = (stderr + text).slice(-4096);
      if (!child.established && stderr.includes('Watches established.')) {
        child.established = true;
        this.established(child, waiters);
      }
    });
    proc.stdin?.on('error', () => undefined); // a child that died at once: 'exit' says why
    proc.stdin?.end(list.join('\n') + '\n');
    proc.on('error', (err) => {
      // spawn failed (ENOENT, EACCES): 'exit' may not follow.
      if (child.stopping) return;
      child.stopping = true;
      if (this.starting === child) {
        this.starting = undefined;
        this.startFailed(list, waiters, `cannot start ${this.options.binary}: ${err.message}`);
      }
    });
    proc.on('exit', (code, signal) => {
      if (child.stopping) return;
      child.stopping = true;
      const why = `${this.options.binary} exited (${signal ?? `code ${String(code)}`}): ${stderr.replace(/Setting up watches\.\s*|Watches established\.\s*/g, '').trim() || 'no message'}`;
      if (this.starting === child) {
        this.starting = undefined;
        this.startFailed(list, waiters, why);
      } else if (this.current === child) {
        // It had its watches: whatever happened since may be lost.
        this.current = undefined;
        this.stats.died++;
        this.sink.onError(`${why}; restarting it and listing every watched directory again`);
        this.lostOnStart = 'inotifywait restarted';
        this.schedule(100);
      }
    });
  }

  private established(child: Child, waiters: Waiter[]): void {
    if (this.closed) {
      this.stop(child);
      return;
    }
    this.starting = undefined;
    this.failures = 0;
    const old = this.current;
    this.current = child;
    // The new child watches everything the old one did, but events from before its watches may
    // still sit unread in the old one's queue (a busy node schedules it late): the old one goes
    // only after a while. The periodic rescan is the backstop.
    if (old) {
      this.retiring.add(old);
      setTimeout(() => {
        this.retiring.delete(old);
        this.stop(old);
      }, this.options.retireMs ?? 2_000).unref();
    }
    for (const w of waiters) w.resolve();
    if (this.lostOnStart !== undefined) {
      const reason = this.lostOnStart;
      this.lostOnStart = undefined;
      this.sink.onLost(reason);
    }
    if (this.dirty) {
      this.dirty = false;
      this.schedule();
    }
  }

  /**
   * A child exited before it had its watches. The usual cause is a listed directory that went
   * away (inotifywait stops at the first path it cannot watch): drop those and try again at once.
   * Otherwise retry a few times, then give up so the caller uses fs.watch.
   */
  private startFailed(list: string[], waiters: Waiter[], why: string): void {
    if (this.closed) {
      for (const w of waiters) w.resolve();
      return;
    }
    void (async () => {
      const gone = (await Promise.all(list.map(async (d) => ((await lstat(d).then((s) => s.isDirectory(), () => false)) ? undefined : d)))).filter((d): d is string => d !== undefined);
      if (this.closed) {
        for (const w of waiters) w.resolve();
        return;
      }
      for (const d of gone) this.dirs.delete(d);
      // A directory that went away needs no watch: its waiter is done (the caller's listing finds nothing).
      const left: Waiter[] = [];
      for (const w of waiters) {
        if (gone.includes(w.dir)) w.resolve();
        else left.push(w);
      }
      this.waiters.unshift(...left);
      if (gone.length === 0) this.failures++;
      if (this.failures >= (this.options.maxStartFailures ?? 3)) {
        this.brokenReason = why;
        this.sink.onError(`${why}; giving up on inotifywait, using fs.watch`);
        for (const w of this.waiters.splice(0)) w.reject(new Error(why));
        return;
      }
      this.schedule(gone.length > 0 ? 0 : 100 * this.failures);
    })();
  }

  private stop(child: Child): void {
    child.stopping = true;
    child.process.kill('SIGTERM');
  }

  private onRecord(record: string): void {
    if (this.closed) return;
    const space = record.indexOf(' ');
    if (space < 0) return;
    const events = record.slice(0, space);
    const path = record.slice(space + 1);
    if (events.split(',').includes('Q_OVERFLOW')) {
      this.stats.overflows++;
      this.sink.onLost('inotify queue overflow');
      return;
    }
    const slash = path.lastIndexOf('/');
    if (slash <= 0) return;
    this.sink.onEvent(path.slice(0, slash), path.slice(slash + 1));
  }
}
