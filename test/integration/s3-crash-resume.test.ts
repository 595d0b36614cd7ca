/**
 * A write-back process killed with SIGKILL in the middle of a multipart upload, then restarted
 * (as after a pod restart, the output found again at start): the output ends up complete and
 * intact, the crashed upload is aborted (none left on the server), and a further restart sends
 * nothing because holds() recognises the stored copy. Runs on Swift, which lists multipart uploads.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { S3Store } from '../../agent/store/s3/s3-store.js';
import { verifyStore } from '../../agent/store/verify.js';
import { fallbackKey } from '../../agent/spark/fallback-key.js';
import { shuffleFileName } from '../../agent/spark/file-names.js';
import type { MapOutput } from '../../agent/watch/map-output.js';
import { readAll, tempDir, writeMapOutput } from '../support/local-files.js';
import { createBucket, storeOn, swiftS3, type S3Server } from '../kit/s3-servers.js';

const MiB = 1024 * 1024;
const APP = 'app-crash';
const child = fileURLToPath(new URL('../support/writeback-child.ts', import.meta.url));
const register = fileURLToPath(new URL('../support/ts-register.mjs', import.meta.url));

interface ChildRun {
  lines: string[];
  /** Resolves with the first line matching, or rejects when the child exits first. */
  waitFor(pattern: RegExp): Promise<string>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(signal: NodeJS.Signals): void;
}

function startChild(spec: object): ChildRun {
  const proc = spawn(process.execPath, ['--import', register, child], {
    env: { ...process.env, CHILD_SPEC: JSON.stringify(spec) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  const watchers: Array<{ pattern: RegExp; resolve: (l: string) => void }> = [];
  createInterface({ input: proc.stdout }).on('line', (line) => {
    lines.push(line);
    for (const w of watchers.filter((x) => x.pattern.test(line))) {
      watchers.splice(watchers.indexOf(w), 1);
      w.resolve(line);
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  return {
    lines,
    exited,
    kill: (signal) => proc.kill(signal),
    waitFor: (pattern) => {
      const seen = lines.find((l) => pattern.test(l));
      if (seen) return Promise.resolve(seen);
      return Promise.race([
        new Promise<string>((resolve) => watchers.push({ pattern, resolve })),
        exited.then((e) => Promise.reject(new Error(`child exited (${e.code ?? e.signal}) before ${pattern}; output:\n${lines.join('\n')}`))),
      ]);
    },
  };
}

describe('SIGKILL in the middle of a multipart upload (Swift s3api)', () => {
  let server: S3Server;
  let bucket: string;
  let store: S3Store;
  let local: { dir: string; cleanup: () => Promise<void> };

  beforeAll(async () => {
    server = await swiftS3();
    bucket = await createBucket(server, 'crash');
    store = storeOn(server, bucket);
    local = await tempDir('crash-');
  });
  afterAll(async () => {
    await store?.close();
    await local?.cleanup();
  });

  it('restart completes the output intact and leaves no multipart upload behind', async () => {
    const { output, data, index } = await writeMapOutput(`${local.dir}/blockmgr-c`, APP, 3, '17', [12 * MiB, 0, 18 * MiB]);
    const spec = { endpoint: server.endpoint, credentials: server.credentials, bucket, prefix: 'fallback/root', partSize: 5 * MiB };
    const dataKey = fallbackKey(APP, 3, shuffleFileName(3, '17', 'data'));
    const indexKey = fallbackKey(APP, 3, shuffleFileName(3, '17', 'index'));

    // First run, slowed to 8 MiB/s so that the 30 MiB (six parts) take seconds: killed after a part is in.
    const first = startChild({ ...spec, bandwidth: 8 * MiB, output });
    await first.waitFor(/^request UploadPart ok$/);
    first.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');
    expect(first.lines.some((l) => l.startsWith('done'))).toBe(false);
    expect(await store.stat(dataKey)).toBeUndefined();
    expect(await store.pendingUploads(`${APP}/`)).toHaveLength(1);

    // Restart: the watcher finds the output at start.
    const restarted: MapOutput = { ...output, foundAtStart: true };
    const second = startChild({ ...spec, bandwidth: 0, output: restarted });
    const done = JSON.parse((await second.waitFor(/^done /)).slice(5)) as { uploaded: number; skipped: number };
    expect((await second.exited).code).toBe(0);
    expect(done.uploaded).toBe(data.length + index.length);
    expect(second.lines).toContain('request AbortMultipartUpload ok');

    expect((await readAll(await store.read(dataKey))).equals(data)).toBe(true);
    expect((await readAll(await store.read(indexKey))).equals(index)).toBe(true);
    expect(await store.pendingUploads(`${APP}/`)).toEqual([]);
    const report = await verifyStore(store, APP);
    expect(report.problems).toEqual([]);
    expect(report.okOutputs).toBe(1);

    // Another restart: what is stored intact is not sent again.
    const third = startChild({ ...spec, bandwidth: 0, output: restarted });
    const again = JSON.parse((await third.waitFor(/^done /)).slice(5)) as { uploaded: number; skipped: number };
    expect(again).toEqual({ uploaded: 0, skipped: 2 });
  });
});
