/**
 * SIGTERM end to end: the built CLI as a child process, real signals, real files, a real store.
 * The store is taken down while outputs are committed, so that exactly the intended backlog is
 * pending when the signal arrives; it comes back just before the signal.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SparkLikeExecutor } from '../kit/spark-writer.js';
import { encodeIndex } from '../../agent/spark/index-file.js';
import { AgentProcess } from '../kit/agent-process.js';
import { commitOutputs, keysOf, storedIntact, type Committed } from '../support/committed-outputs.js';
import { STORE_FIXTURES, type StoreFixture } from '../kit/store-fixtures.js';

const APP = 'app-e2e';
const MiB = 1024 * 1024;

describe.each(STORE_FIXTURES)('SIGTERM with the $name store', ({ make }) => {
  let dir: string;
  let store: StoreFixture;
  let agent: AgentProcess | undefined;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'e2e-term-'));
    store = await make(dir);
  });
  afterEach(async () => {
    if (agent) {
      agent.kill('SIGKILL');
      await agent.exited;
      agent = undefined;
    }
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function startWithBacklog(outputs: { count: number; bytes: number }, args: string[]): Promise<{ committed: Committed[]; agent: AgentProcess }> {
    await store.down();
    const executor = new SparkLikeExecutor([join(dir, 'local-1'), join(dir, 'local-2')]);
    const committed = await commitOutputs(executor, APP, { ...outputs, shuffles: 3 });
    // A data-less output (every partition empty) is complete too, and must be stored.
    const empty = await executor.commit({ shuffleId: 0, mapId: 9999, partitions: [0, 0, 0] });
    committed.push({ id: `${APP}/0/9999`, shuffleId: 0, mapId: '9999', data: Buffer.alloc(0), index: encodeIndex(empty.offsets) });
    const started = await AgentProcess.start(['--local-dirs', `${join(dir, 'local-1')},${join(dir, 'local-2')}`, ...store.args, '--app-id', APP, ...args], { env: store.env });
    agent = started;
    return { committed, agent: started };
  }

  it('drains hundreds of MB pending at SIGTERM, exits 0 within the drain timeout, every output byte-identical', async () => {
    // A 1 MiB/s ceiling (S3) would need minutes for this backlog: the drain must lift it.
    const { committed, agent: a } = await startWithBacklog({ count: 28, bytes: 8 * MiB }, ['--drain-timeout', '20', '--upload-concurrency', '2', '--max-upload-bandwidth', '1MiB']);
    const before = await a.status();
    expect(before.pendingOutputs).toBe(committed.length);
    expect(before.pendingBytes as number).toBeGreaterThanOrEqual(224 * MiB);
    await store.up();
    const t0 = Date.now();
    a.kill('SIGTERM');
    const exit = await a.exited;
    expect(exit.code).toBe(0);
    expect(exit.at - t0).toBeLessThan(20_000);
    const last = await a.log((l) => l.msg === 'everything committed is stored; exiting');
    expect(last.exitCode).toBe(0);
    for (const o of committed) expect(await storedIntact(store, APP, o), o.id).toBe(true);
  });

  it('a drain timeout too short: exit code 3, and the log lists exactly the outputs not stored', async () => {
    const message = join(dir, 'termination-log');
    const { committed, agent: a } = await startWithBacklog({ count: 24, bytes: 2 * MiB }, ['--drain-timeout', '0.1', '--termination-message-path', message]);
    // One output can never be written (a directory where its data object goes), whatever the speed.
    const blocked = committed[7] as Committed;
    await store.up();
    await store.block(keysOf(APP, blocked).data);
    const t0 = Date.now();
    a.kill('SIGTERM');
    const exit = await a.exited;
    expect(exit.code).toBe(3);
    expect(exit.at - t0).toBeLessThan(0.1 * 1000 + 3_000 + 1_000); // drain timeout + close budget + slack
    const line = await a.log((l) => l.msg === 'exiting with outputs not stored');
    const notStored = new Set(line.notStored as string[]);
    expect(line.notStoredCount).toBe(notStored.size);
    expect(notStored.has(blocked.id)).toBe(true);
    // Exact: listed <=> not completely in the store.
    for (const o of committed) expect(notStored.has(o.id), o.id).toBe(!(await storedIntact(store, APP, o)));
    // The same exit where Kubernetes shows it (the container's terminationMessagePath).
    const written = JSON.parse(await readFile(message, 'utf8')) as { exitCode: number; notStoredCount: number; notStored: string[] };
    expect(written.exitCode).toBe(3);
    expect(written.notStoredCount).toBe(notStored.size);
    // The first 20 ids (the kubelet keeps 4 KiB of the message).
    expect(written.notStored).toHaveLength(Math.min(20, notStored.size));
    for (const id of written.notStored) expect(notStored.has(id), id).toBe(true);
  });

  it('a second signal exits at once with the same accounting', async () => {
    const { committed, agent: a } = await startWithBacklog({ count: 6, bytes: MiB }, ['--drain-timeout', '60']);
    a.kill('SIGTERM');
    await a.log((l) => l.msg === 'drain started');
    const t0 = Date.now();
    a.kill('SIGINT');
    const exit = await a.exited;
    expect(exit.code).toBe(3);
    expect(exit.at - t0).toBeLessThan(3_000);
    const line = await a.log((l) => l.msg === 'exiting with outputs not stored');
    expect(line.reason).toBe('second-signal');
    expect([...(line.notStored as string[])].sort()).toEqual(committed.map((o) => o.id).sort());
  });
});
