/**
 * A descriptor opened synchronously, read through the thread pool like a FileHandle.
 *
 * The write-back opens an output's two files with the checks of safe-file.ts. Through
 * `fs.promises` that is four thread-pool round trips per file (lstat, open, fstat, readlink) and
 * one more to close; synchronously it is the same system calls, each a few microseconds on the
 * local disk's cached metadata, without waking a pool thread and then the event loop for each.
 * On real Spark output the agent handles one output at a time, half a second apart, and those
 * wake-ups were a visible part of its CPU (bench/RESULTS.md, bench:spark-overhead). The watcher
 * makes the same calls synchronously for the same files just before. Reads, which may wait for
 * the disk, still go through the pool.
 */
import { close, read } from 'node:fs';
import type { ReadHandle } from './block-store.js';

/**
 * A ReadHandle on `fd`, which it owns. Like a FileHandle, `close()` waits for the reads in
 * flight: closing the number while a pool thread is about to read it could let a read land on
 * another file opened meanwhile under the same number. Reads after `close()` fail with EBADF
 * (the gRPC service reading a held output then serves it from the next source).
 */
export function fdHandle(fd: number): ReadHandle {
  let reading = 0;
  let closed: Promise<void> | undefined;
  let closeNow: (() => void) | undefined;
  return {
    fd,
    read: async (buffer, offset, length, position) => {
      if (closed) throw Object.assign(new Error('file closed'), { code: 'EBADF' });
      reading++;
      try {
        return await readFd(fd, buffer, offset, length, position);
      } finally {
        if (--reading === 0) closeNow?.();
      }
    },
    // Once only: a number closed twice may by then be another file's.
    close: () =>
      (closed ??= new Promise<void>((resolve) => {
        closeNow = () => close(fd, () => resolve());
        if (reading === 0) closeNow();
      })),
  };
}

/**
 * One positioned read on a raw descriptor through the thread pool, with the callback API: about
 * half the CPU of `FileHandle.read` (no promise machinery around the pool hop). The caller keeps
 * the descriptor open until the read settles.
 */
export function readFd(fd: number, buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }> {
  return new Promise((resolve, reject) => {
    read(fd, buffer, offset, length, position, (err, bytesRead) => (err ? reject(err) : resolve({ bytesRead })));
  });
}
