/**
 * The two ways the watcher can watch Spark's NN directories; watcher tests run against both.
 * inotifywait is installed by scripts/setup-test-env.sh (Debian's inotify-tools): a test that
 * needs it fails with this message rather than skipping.
 */
import { findOnPath } from '../../agent/watch/find-binary.js';

export function inotifywaitBinary(): string {
  const found = findOnPath('inotifywait');
  if (found === undefined) throw new Error('inotifywait is not on the PATH: run scripts/setup-test-env.sh (Debian package inotify-tools)');
  return found;
}

/** `inotifywait` for LocalDirWatcherOptions: the binary, or undefined for fs.watch. */
export const FILE_EVENT_BACKENDS: ReadonlyArray<{ name: string; inotifywait: () => string | undefined }> = [
  { name: 'inotifywait', inotifywait: inotifywaitBinary },
  { name: 'fs.watch', inotifywait: () => undefined },
];
