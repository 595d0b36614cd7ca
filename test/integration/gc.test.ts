/**
 * `shuffle-agent gc` on a file store and on s3rver: an orphaned app (every object old) is deleted,
 * a running one (old copies, fresh heartbeat) and a recent one are left, `--dry-run` deletes
 * nothing, an age below the minimum is refused, and a writer racing gc never loses an object.
 * The heartbeat object is no output to verify or ListMapOutputs. Ages are made by setting the
 * objects' files' mtimes (s3rver reports a file's mtime as the object's Last-Modified); on Swift,
 * whose times cannot be set, gc's clock is moved instead.
 */
import { execFile } from 'node:child_process';
import { readdir, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { BlockStore } from '../../agent/store/block-store.js';
import { FileStore } from '../../agent/store/file-store.js';
import { collectGarbage, type GcDecision, type GcStore } from '../../agent/store/gc.js';
import { runGc } from '../../agent/commands/gc.js';
import { fallbackKey } from '../../agent/spark/fallback-key.js';
import { shuffleFileName } from '../../agent/spark/file-names.js';
import { listMapOutputs } from '../../agent/serve/list-outputs.js';
import { verifyStore } from '../../agent/store/verify.js';
import { writeMapOutput } from '../support/local-files.js';
import { createBucket, startS3rver, storeOn, swiftS3, type S3Server } from '../kit/s3-servers.js';
import { tempDir } from '../kit/temp-dir.js';
import { ownerMarker } from '../../agent/tenancy/app-owners.js';

const HOUR = 3_600_000;
const CLI = fileURLToPath(new URL('../../dist/agent/cli.js', import.meta.url));

interface Fixture {
  store: BlockStore;
  /** `--store` and the store's flags for gc. */
  args: string[];
  /** Environment gc needs (the S3 SDK reads credentials from the process's own). */
  env: Record<string, string>;
  /** Directory whose files hold `app`'s objects. */
  filesOf: (app: string) => string;
  close: () => Promise<void>;
}

async function fileFixture(): Promise<Fixture> {
  const t = await tempDir('ssa-gc-file-');
  const root = join(t.path, 'store');
  return { store: new FileStore(root), args: ['--store', `file://${root}`], env: {}, filesOf: (app) => join(root, app), close: t.cleanup };
}

async function s3rverFixture(): Promise<Fixture> {
  const server: S3Server = await startS3rver();
  const bucket = await createBucket(server, 'gc');
  const store = storeOn(server, bucket);
  return {
    store,
    args: ['--store', `s3://${bucket}/fallback/root`, '--s3-endpoint', server.endpoint, '--s3-force-path-style', '--s3-checksums', 'when_required'],
    env: { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_REGION: 'us-east-1' },
    filesOf: (app) => join(server.directory as string, bucket, 'fallback', 'root', app),
    close: async () => {
      await store.close();
      await server.close();
    },
  };
}

let localSeq = 0;
/** Stores `bytes` under `key` through the store's own put. */
async function put(store: BlockStore, dir: string, key: string, bytes: string): Promise<void> {
  const path = join(dir, `local-${localSeq++}`);
  await writeFile(path, bytes);
  await store.put(key, { path, size: Buffer.byteLength(bytes) });
}

/** Sets the mtime of every file holding `app`'s objects to `ageMs` ago. */
async function age(f: Fixture, app: string, ageMs: number): Promise<void> {
  const t = new Date(Date.now() - ageMs);
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else await utimes(p, t, t);
    }
  };
  await walk(f.filesOf(app));
}

async function keys(store: BlockStore, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for await (const o of store.list(prefix)) out.push(o.key);
  return out.sort();
}

const out = (a: string, s: number, m: number): string => fallbackKey(a, s, `shuffle_${s}_${m}_0.data`);

/** Three apps: orphaned (all 3 h old), running (copies 3 h old, heartbeat fresh), recent (fresh, no heartbeat). */
async function populate(f: Fixture, dir: string): Promise<void> {
  for (const app of ['app-orphan', 'app-running', 'app-recent']) {
    for (let m = 0; m < 3; m++) await put(f.store, dir, out(app, 0, m), `${app} map ${m}`);
  }
  await put(f.store, dir, 'app-orphan/_heartbeat', '{}');
  await age(f, 'app-orphan', 3 * HOUR);
  await age(f, 'app-running', 3 * HOUR);
  await put(f.store, dir, 'app-running/_heartbeat', '{}');
}

describe.each([
  { name: 'file', make: fileFixture },
  { name: 's3rver', make: s3rverFixture },
])('gc on the $name store', ({ make }) => {
  let f: Fixture;
  let local: { path: string; cleanup: () => Promise<void> };
  beforeAll(async () => {
    f = await make();
    for (const [k, v] of Object.entries(f.env)) vi.stubEnv(k, v);
    local = await tempDir('ssa-gc-local-');
    await populate(f, local.path);
  });
  afterAll(async () => {
    vi.unstubAllEnvs();
    await f?.close();
    await local?.cleanup();
  });

  const gc = async (extra: string[]): Promise<{ code: number; lines: Array<Record<string, unknown>> }> => {
    const lines: Array<Record<string, unknown>> = [];
    const errors: string[] = [];
    const code = await runGc([...f.args, ...extra], { out: (s) => lines.push(JSON.parse(s) as Record<string, unknown>), err: (s) => errors.push(s) });
    if (code === 2) lines.push({ error: errors.join('\n') });
    return { code, lines };
  };

  it('refuses an --older-than below 30 minutes', async () => {
    expect((await gc(['--older-than', '29m'])).code).toBe(2);
  });

  it('--dry-run names the orphan and deletes nothing', async () => {
    const before = await keys(f.store);
    const { code, lines } = await gc(['--older-than', '1h', '--dry-run']);
    expect(code).toBe(0);
    expect(lines.filter((l) => !l.summary).map((l) => [l.app, l.action])).toEqual([
      ['app-orphan', 'would-delete'],
      ['app-recent', 'kept'],
      ['app-running', 'kept'],
    ]);
    expect(await keys(f.store)).toEqual(before);
  });

  it('deletes the orphaned app and leaves the running and the recent one', async () => {
    const running = await keys(f.store, 'app-running/');
    const recent = await keys(f.store, 'app-recent/');
    const { code, lines } = await gc(['--older-than', '1h']);
    expect(code).toBe(0);
    expect(lines[0]).toMatchObject({ app: 'app-orphan', action: 'deleted', objects: 4, deleted: 4 });
    expect(lines.at(-1)).toMatchObject({ summary: true, apps: 3, deleted: 1, kept: 2, objectsDeleted: 4 });
    expect(await keys(f.store, 'app-orphan/')).toEqual([]);
    expect(await keys(f.store, 'app-running/')).toEqual(running);
    expect(await keys(f.store, 'app-recent/')).toEqual(recent);
    // No empty directory tree is left behind either.
    await expect(stat(f.filesOf('app-orphan'))).rejects.toMatchObject({ code: 'ENOENT' });
  });
});

describe.each([
  { name: 'file', make: fileFixture },
  { name: 's3rver', make: s3rverFixture },
])('gc on a $name store shared with other data (issue 17, item 6)', ({ make }) => {
  it('deletes only old app prefixes with a marker of this project, never folders of other data', async () => {
    const f = await make();
    for (const [k, v] of Object.entries(f.env)) vi.stubEnv(k, v);
    const t = await tempDir('ssa-gc-shared-');
    try {
      // Other data beside the copies, old, with names an app id could have.
      const foreign = ['warehouse/sales/part-00000.parquet', 'spark-events/app-20260101000000-0000', 'checkpoints/0/offsets', 'spark-0a1b2c3d4e5f60718293a4b5c6d7e8f9/0/12/shuffle_0_1_0.data'];
      for (const k of foreign) await put(f.store, t.path, k, 'not a copy of this project');
      // Two apps this project wrote: the agent's owner marker, the plugin's heartbeat.
      await put(f.store, t.path, 'app-agent/_owner', ownerMarker('team-a').toString());
      await put(f.store, t.path, out('app-agent', 0, 0), 'copy');
      await put(f.store, t.path, 'app-plugin/_heartbeat', '{}');
      await put(f.store, t.path, out('app-plugin', 0, 0), 'copy');
      for (const top of ['warehouse', 'spark-events', 'checkpoints', 'spark-0a1b2c3d4e5f60718293a4b5c6d7e8f9', 'app-agent', 'app-plugin']) await age(f, top, 48 * HOUR);
      const got: GcDecision[] = [];
      for await (const d of collectGarbage(f.store as GcStore, { olderThanMs: HOUR, dryRun: false })) got.push(d);
      expect(got.filter((d) => d.action === 'deleted').map((d) => d.app).sort()).toEqual(['app-agent', 'app-plugin']);
      for (const d of got.filter((x) => x.action !== 'deleted')) expect(d.reason, d.app).toMatch(/no _owner or _heartbeat marker/);
      expect(await keys(f.store)).toEqual([...foreign].sort());
    } finally {
      vi.unstubAllEnvs();
      await f.close();
      await t.cleanup();
    }
  });
});

describe("gc on Swift's s3api (real Last-Modified times, DeleteObjects with Content-MD5)", () => {
  it('keeps a young app, then, two hours later by its clock, names it in a dry run and deletes it', async () => {
    const server = await swiftS3();
    const bucket = await createBucket(server, 'gc');
    const store = storeOn(server, bucket);
    const t = await tempDir('ssa-gc-swift-');
    vi.stubEnv('AWS_ACCESS_KEY_ID', server.credentials.accessKeyId);
    vi.stubEnv('AWS_SECRET_ACCESS_KEY', server.credentials.secretAccessKey);
    vi.stubEnv('AWS_REGION', 'us-east-1');
    try {
      for (let m = 0; m < 3; m++) await put(store, t.path, out('app-swift', 0, m), `swift ${m}`);
      await put(store, t.path, 'app-swift/_heartbeat', '{}');
      const args = ['--store', `s3://${bucket}/fallback/root`, '--s3-endpoint', server.endpoint, '--s3-force-path-style', '--s3-checksums', 'when_required', '--older-than', '1h'];
      const gc = async (extra: string[], now: () => number): Promise<Array<Record<string, unknown>>> => {
        const lines: Array<Record<string, unknown>> = [];
        expect(await runGc([...args, ...extra], { now, out: (s) => lines.push(JSON.parse(s) as Record<string, unknown>), err: () => undefined })).toBe(0);
        return lines;
      };
      const later = (): number => Date.now() + 2 * HOUR;
      expect((await gc([], Date.now))[0]).toMatchObject({ app: 'app-swift', action: 'kept', objects: 4 });
      expect((await gc(['--dry-run'], later))[0]).toMatchObject({ app: 'app-swift', action: 'would-delete' });
      expect(await keys(store)).toHaveLength(4);
      expect((await gc([], later))[0]).toMatchObject({ app: 'app-swift', action: 'deleted', deleted: 4 });
      expect(await keys(store)).toEqual([]);
    } finally {
      vi.unstubAllEnvs();
      await store.close();
      await server.close();
      await t.cleanup();
    }
  }, 300_000);
});

describe('gc against a concurrent writer (file store)', () => {
  let t: { path: string; cleanup: () => Promise<void> };
  let f: Fixture;
  beforeAll(async () => {
    t = await tempDir('ssa-gc-race-');
    f = await fileFixture();
  });
  afterAll(async () => {
    await f?.close();
    await t?.cleanup();
  });

  /** The real store, with `hook` run before the n-th listing of `prefix` (0-based). */
  const racing = (prefix: string, n: number, hook: () => Promise<void>): GcStore => {
    let seen = 0;
    return {
      url: f.store.url,
      delete: (k) => f.store.delete(k),
      list: (p) =>
        (async function* () {
          if (p === prefix && seen++ === n) await hook();
          yield* f.store.list(p);
        })(),
    };
  };

  const decisions = async (store: GcStore): Promise<GcDecision[]> => {
    const got: GcDecision[] = [];
    for await (const d of collectGarbage(store, { olderThanMs: HOUR, dryRun: false })) got.push(d);
    return got;
  };

  it('leaves an app alone when an object arrives between the scan and the delete', async () => {
    await put(f.store, t.path, 'app-late/_owner', ownerMarker('team-a').toString());
    for (let m = 0; m < 2; m++) await put(f.store, t.path, out('app-late', 0, m), `late ${m}`);
    await age(f, 'app-late', 2 * HOUR);
    // The re-check is the first listing of the app's own prefix.
    const store = racing('app-late/', 0, () => put(f.store, t.path, out('app-late', 1, 0), 'written during gc'));
    expect(await decisions(store)).toMatchObject([{ app: 'app-late', action: 'kept' }]);
    expect(await keys(f.store, 'app-late/')).toHaveLength(4);
  });

  it('keeps an object written after the re-check, and reports it', async () => {
    await put(f.store, t.path, 'app-later/_owner', ownerMarker('team-a').toString());
    for (let m = 0; m < 2; m++) await put(f.store, t.path, out('app-later', 0, m), `later ${m}`);
    await age(f, 'app-later', 2 * HOUR);
    // The second listing of the prefix is the count after the delete; the write lands just before it.
    const store = racing('app-later/', 1, () => put(f.store, t.path, out('app-later', 2, 0), 'written while deleting'));
    const got = await decisions(store);
    expect(got.find((d) => d.app === 'app-later')).toMatchObject({ action: 'deleted', deleted: 3, left: 1 });
    expect(await keys(f.store, 'app-later/')).toEqual([out('app-later', 2, 0)]);
  });
});

describe('the heartbeat object', () => {
  it("is not taken for an output by verify or ListMapOutputs (with Hadoop's checksum file beside it)", async () => {
    const f = await fileFixture();
    const t = await tempDir('ssa-gc-hb-');
    try {
      const { output } = await writeMapOutput(join(t.path, 'blockmgr-x'), 'app-hb', 0, '5', [10, 0, 20]);
      await f.store.put(fallbackKey('app-hb', 0, shuffleFileName(0, '5', 'data')), { path: output.dataPath as string, size: output.dataLength });
      await f.store.put(fallbackKey('app-hb', 0, shuffleFileName(0, '5', 'index')), { path: output.indexPath, size: output.indexLength });
      await put(f.store, t.path, 'app-hb/_heartbeat', '{}');
      await put(f.store, t.path, 'app-hb/._heartbeat.crc', 'crc');
      const report = await verifyStore(f.store, 'app-hb');
      expect(report).toMatchObject({ outputs: 1, okOutputs: 1, otherObjects: 2, problems: [] });
      const listed = [];
      for await (const o of listMapOutputs({ lookup: { get: () => undefined, list: () => [] }, store: f.store, layout: 'spark-3.3' }, 'app-hb', [], new AbortController().signal)) listed.push(o.map_id);
      expect(listed).toEqual(['5']);
    } finally {
      await f.close();
      await t.cleanup();
    }
  });
});

describe('the built CLI', () => {
  it('shuffle-agent gc prints one JSON line per app and a summary', async () => {
    const f = await fileFixture();
    const t = await tempDir('ssa-gc-cli-');
    try {
      await put(f.store, t.path, 'app-old/_owner', ownerMarker('team-a').toString());
      await put(f.store, t.path, out('app-old', 0, 0), 'old');
      await age(f, 'app-old', 48 * HOUR);
      const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'gc', ...f.args, '--older-than', '1d']);
      const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines).toMatchObject([{ app: 'app-old', action: 'deleted', deleted: 2 }, { summary: true, deleted: 1 }]);
      expect(await keys(f.store)).toEqual([]);
    } finally {
      await f.close();
      await t.cleanup();
    }
  });
});
