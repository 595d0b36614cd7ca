/**
 * The `--safe-exit-file` marker: present (with a JSON summary) exactly while the agent is
 * `safe_to_exit`. Written to a temp file in the same directory and renamed into place, so a
 * reader never sees a partial document; removed when the agent goes back to draining.
 */
import { mkdir, rename, unlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';

export class SafeExitFile {
  constructor(readonly path: string) {}

  async write(summary: Record<string, unknown>): Promise<void> {
    const dir = dirname(this.path);
    await mkdir(dir, { recursive: true });
    const temp = join(dir, `.${basename(this.path)}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      await writeFile(temp, JSON.stringify(summary, null, 2) + '\n', { flush: true });
      await rename(temp, this.path);
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      throw new Error(`write safe-exit file ${this.path}`, { cause: err });
    }
  }

  /** Remove the marker; absent is fine. */
  async remove(): Promise<void> {
    try {
      await unlink(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`remove safe-exit file ${this.path}`, { cause: err });
    }
  }
}
