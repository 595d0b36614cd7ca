/**
 * The stores the end-to-end tests run against, behind one shape so each test is written once:
 * a `--store` URL, a way to take the store down and bring it back (a backlog builds up while it is
 * down, deterministically), and a reader of stored objects.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface StoreFixture {
  name: string;
  /** `--store URL` and whatever else the agent needs to reach it. */
  args: string[];
  /** Environment for the agent (credentials). */
  env: NodeJS.ProcessEnv;
  /** Make every write fail (transiently) from now on. */
  down(): Promise<void>;
  /** Make writes succeed again. */
  up(): Promise<void>;
  /** The stored bytes of `key`, or undefined when absent. */
  read(key: string): Promise<Buffer | undefined>;
  /** Make one key unwritable while the store is up (a directory in the way). */
  block(key: string): Promise<void>;
  close(): Promise<void>;
}

/** A directory store. Down: a regular file stands where the root directory should be. */
export async function fileStoreFixture(dir: string): Promise<StoreFixture> {
  const root = join(dir, 'store');
  return {
    name: 'file',
    args: ['--store', `file:${root}`],
    env: {},
    async down() {
      await rm(root, { recursive: true, force: true });
      await writeFile(root, 'the store is down\n');
    },
    async up() {
      await rm(root, { force: true });
      await mkdir(root, { recursive: true });
    },
    async read(key) {
      try {
        return await readFile(join(root, key));
      } catch {
        return undefined;
      }
    },
    async block(key) {
      await mkdir(join(root, key, 'in-the-way'), { recursive: true });
    },
    async close() {
      // Nothing runs.
    },
  };
}

export const STORE_FIXTURES: Array<{ name: string; make: (dir: string) => Promise<StoreFixture> }> = [{ name: 'file', make: fileStoreFixture }];
