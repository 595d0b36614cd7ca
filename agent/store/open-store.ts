/** Build the store a `--store` URL names. */
import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BlockStore } from './block-store.js';
import { FileStore } from './file-store.js';

/** `file:///abs`, `file:/abs`, `file:./rel` or `file:rel` (relative to the working directory). */
export function fileStoreRoot(url: string): string {
  if (url.startsWith('file://')) return fileURLToPath(url);
  const rest = url.slice('file:'.length);
  if (rest === '') throw new RangeError('file: store needs a path');
  return isAbsolute(rest) ? rest : resolve(rest);
}

export async function openStore(url: string): Promise<BlockStore> {
  if (url.startsWith('file:')) {
    const store = new FileStore(fileStoreRoot(url));
    return store;
  }
  throw new RangeError(`unsupported store ${JSON.stringify(url)}`);
}
