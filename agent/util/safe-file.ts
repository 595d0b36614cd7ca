/**
 * Opening files that tenants control. In DaemonSet mode every app's executors write where the
 * agent reads, so a name Spark would use can be a symlink (to another app's output, a secret,
 * `/dev/zero`), a hard link, a FIFO (an open for reading blocks until a writer comes), a device
 * or a directory. A file is accepted only when it is a regular file with one link (Spark writes
 * each file once and renames it into place), reached through no symlink at all, and the
 * descriptor opened is the inode that was looked at (and, when given, the one the watcher
 * accepted earlier).
 *
 * Every open is `O_NOFOLLOW | O_NONBLOCK`: no symlink as the last component, and a FIFO or
 * device that slipped in between the lstat and the open cannot block the caller. Symlinks in
 * the directories on the way are caught after the open: on Linux the kernel names the file a
 * descriptor refers to (`/proc/self/fd/N`), which must be the very path asked for.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, readlinkSync, type Stats } from 'node:fs';
import { lstat, open, readlink, type FileHandle } from 'node:fs/promises';
import { errorCode } from './errors.js';

/** Which inode a file is: what the watcher saw and what later opens must find again. */
export interface FileIdentity {
  dev: number;
  ino: number;
}

export type UnsafeReason = 'symlink' | 'not-regular-file' | 'hard-link' | 'replaced' | 'too-large';

/**
 * A local file that can never be accepted as it is: retrying does not help, only the tenant
 * replacing it does. Messages name the path and the reason, never sizes or link targets.
 */
export class UnsafeFileError extends Error {
  readonly code = 'EUNSAFE';

  constructor(
    readonly reason: UnsafeReason,
    readonly path: string,
    message: string,
  ) {
    super(message);
    this.name = 'UnsafeFileError';
  }
}

const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
/** `/proc/self/fd` exists on Linux only; elsewhere (developer machines) only the last path
 * component is protected (O_NOFOLLOW). */
const CHECK_LOCATION = process.platform === 'linux';

export interface OpenLimits {
  /** Refuse files larger than this (checked before opening, and again on the descriptor). */
  maxSize?: number;
  /** The inode the file must be. */
  expected?: FileIdentity;
}

export function identityOf(s: Pick<Stats, 'dev' | 'ino'>): FileIdentity {
  return { dev: s.dev, ino: s.ino };
}

/** Throws UnsafeFileError unless `s` (an lstat or fstat) is an acceptable file. */
function checkStats(path: string, s: Stats, limits: OpenLimits, before?: Stats): void {
  if (s.isSymbolicLink()) throw new UnsafeFileError('symlink', path, `${path} is a symbolic link`);
  if (!s.isFile()) throw new UnsafeFileError('not-regular-file', path, `${path} is not a regular file`);
  // 0 once Spark unlinked a file we already hold open; never more than 1 for a file Spark wrote.
  if (s.nlink > 1) throw new UnsafeFileError('hard-link', path, `${path} has more than one link`);
  if (limits.maxSize !== undefined && s.size > limits.maxSize) throw new UnsafeFileError('too-large', path, `${path} is larger than the configured limit`);
  const expected = limits.expected ?? (before ? identityOf(before) : undefined);
  if (expected && (s.dev !== expected.dev || s.ino !== expected.ino)) {
    throw new UnsafeFileError('replaced', path, `${path} is not the file that was checked`);
  }
}

function checkLocation(path: string, actual: string): void {
  // "(deleted)": Spark removed the file after we opened it; the descriptor still reads its bytes.
  if (actual !== path && actual !== `${path} (deleted)`) {
    throw new UnsafeFileError('symlink', path, `${path} is reached through a symbolic link`);
  }
}

function openError(path: string, err: unknown): unknown {
  // ELOOP: the name became a symlink between the lstat and the O_NOFOLLOW open.
  if (errorCode(err) === 'ELOOP') return new UnsafeFileError('symlink', path, `${path} is a symbolic link`);
  return err;
}

/**
 * lstat, open and fstat `path` without blocking (bounded work: no data is read). For the
 * watcher, which checks thousands of small files and would pay more in thread-pool round trips.
 * The caller closes the descriptor.
 */
export function openCheckedSync(path: string, limits: OpenLimits = {}): { fd: number; stats: Stats } {
  const before = lstatSync(path);
  checkStats(path, before, limits);
  let fd: number;
  try {
    fd = openSync(path, OPEN_FLAGS);
  } catch (err) {
    throw openError(path, err);
  }
  try {
    const stats = fstatSync(fd);
    checkStats(path, stats, limits, before);
    if (CHECK_LOCATION) checkLocation(path, readlinkSync(`/proc/self/fd/${fd}`));
    return { fd, stats };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/** The same checks, through the thread pool, giving a FileHandle (write-back and serving). */
export async function openChecked(path: string, limits: OpenLimits = {}): Promise<{ handle: FileHandle; stats: Stats }> {
  const before = await lstat(path);
  checkStats(path, before, limits);
  let handle: FileHandle;
  try {
    handle = await open(path, OPEN_FLAGS);
  } catch (err) {
    throw openError(path, err);
  }
  try {
    const stats = await handle.stat();
    checkStats(path, stats, limits, before);
    if (CHECK_LOCATION) checkLocation(path, await readlink(`/proc/self/fd/${handle.fd}`));
    return { handle, stats };
  } catch (err) {
    await handle.close().catch(() => undefined);
    throw err;
  }
}
