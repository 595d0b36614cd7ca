/** Reading a local source file, through its held handle when there is one. */
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import type { LocalFile } from './block-store.js';
import { StoreError } from './block-store.js';

/** A stream of bytes `[start, end)` of the local file (end exclusive; the whole file by default). */
export function readLocal(file: LocalFile, start = 0, end = file.size): Readable {
  // createReadStream's `end` is inclusive and cannot express an empty range (end -1 throws).
  if (end <= start) return Readable.from([]);
  const options = { start, end: end - 1, highWaterMark: 1024 * 1024 };
  return file.handle
    ? createReadStream('', { ...options, fd: file.handle, autoClose: false })
    : createReadStream(file.path, options);
}

/** Map an error from reading a local file to a StoreError the write-back queue understands. */
export function localReadError(file: LocalFile, err: unknown): StoreError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? 'EUNKNOWN';
  if (code === 'ENOENT') return new StoreError(`local file ${file.path} is gone`, 'source-gone', code, { cause: err });
  return new StoreError(`cannot read local file ${file.path}: ${code}`, 'transient', code, { cause: err });
}
