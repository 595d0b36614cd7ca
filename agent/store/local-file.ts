/** Reading a local source file, through its held handle when there is one. */
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import type { LocalFile, ReadHandle } from './block-store.js';
import { StoreError } from './block-store.js';

const CHUNK = 1024 * 1024;

/** A stream of bytes `[start, end)` of the local file (end exclusive; the whole file by default). */
export function readLocal(file: LocalFile, start = 0, end = file.size): Readable {
  // createReadStream's `end` is inclusive and cannot express an empty range (end -1 throws).
  if (end <= start) return Readable.from([]);
  if (file.handle) return Readable.from(readHandle(file.handle, start, end), { objectMode: false });
  return createReadStream(file.path, { start, end: end - 1, highWaterMark: CHUNK });
}

/**
 * Positional reads through a held handle. Not `createReadStream({ fd: handle })`: destroying
 * such a stream closes the FileHandle even with `autoClose: false` (Node 20), and the write-back
 * queue needs the handle for retries and for the index after the data.
 */
async function* readHandle(handle: ReadHandle, start: number, end: number): AsyncGenerator<Buffer> {
  let position = start;
  while (position < end) {
    const buf = Buffer.allocUnsafe(Math.min(CHUNK, end - position));
    const { bytesRead } = await handle.read(buf, 0, buf.length, position);
    if (bytesRead === 0) return;
    position += bytesRead;
    yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
  }
}

/** Map an error from reading a local file to a StoreError the write-back queue understands. */
export function localReadError(file: LocalFile, err: unknown): StoreError {
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? 'EUNKNOWN';
  if (code === 'ENOENT') return new StoreError(`local file ${file.path} is gone`, 'source-gone', code, { cause: err });
  return new StoreError(`cannot read local file ${file.path}: ${code}`, 'transient', code, { cause: err });
}
