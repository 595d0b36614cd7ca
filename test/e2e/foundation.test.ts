/**
 * The whole loop with the built CLI: outputs committed the Spark way reach the file store
 * byte-identical, are read back the way FallbackStorage reads them, survive SIGKILL at any
 * moment, and bad input is reported without losing anything.
 */
import { describe, expect, it } from 'vitest';
import { readdir, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { execFileSync } from 'node:child_process';
import { AgentProcess, CLI } from '../kit/agent-process.js';
import { cliScope } from '../support/cli-scope.js';
import { tempDir } from '../kit/temp-dir.js';
import { readPartitionsLikeSpark } from '../support/fallback-reader.js';
import { SparkLikeExecutor, type CommittedFiles } from '../kit/spark-writer.js';
import { FileStore } from '../../agent/store/file-store.js';
import { fallbackKey } from '../../agent/spark/fallback-key.js';
import { shuffleFileName } from '../../agent/spark/file-names.js';
import { encodeIndex } from '../../agent/spark/index-file.js';
import { parseOwnerMarker } from '../../agent/tenancy/app-owners.js';
import { pollUntil } from '../kit/wait.js';

/** Every file of a file store but the agent's `<appId>/_owner` markers. */
async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      if (e.isDirectory()) await walk(join(d, e.name));
      else if (e.name !== '_owner') out.push(relative(dir, join(d, e.name)));
    }
  };
  await walk(dir);
  return out.sort();
}

function expectedKeys(app: string, outputs: CommittedFiles[]): string[] {
  return outputs
    .flatMap((o) => [
      ...(o.dataPath ? [fallbackKey(app, o.shuffleId, shuffleFileName(o.shuffleId, o.mapId, 'data'))] : []),
      fallbackKey(app, o.shuffleId, shuffleFileName(o.shuffleId, o.mapId, 'index')),
    ])
    .sort();
}

describe('shuffle-agent run (end to end)', () => {
  const scope = cliScope();
  const cleanups = scope.cleanups;

  async function setup(): Promise<{ local: string; storeDir: string; base: string }> {
    const t = await tempDir('ssa-e2e-');
    cleanups.push(t.cleanup);
    return { base: t.path, local: join(t.path, 'local'), storeDir: join(t.path, 'store') };
  }

  /** A small tmpfs (as root) to make a store full or read-only for real; unmounted after the test. */
  async function tmpfs(mnt: string, options: string): Promise<string> {
    await mkdir(mnt);
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', mnt]);
    cleanups.push(async () => {
      execFileSync('umount', ['-l', mnt]);
    });
    return mnt;
  }

  async function start(local: string, storeDir: string, extra: string[] = []): Promise<AgentProcess> {
    return scope.start(['--local-dirs', local, '--store', `file:${storeDir}`, '--app-id', 'app-e2e', '--log-level', 'debug', ...extra]);
  }

  it('stores committed outputs byte-identical, readable the FallbackStorage way; SIGTERM exits 0', async () => {
    const { local, storeDir } = await setup();
    const agent = await start(local, storeDir);
    const exec = new SparkLikeExecutor([local]);
    const outputs: CommittedFiles[] = [];
    outputs.push(await exec.commit({ shuffleId: 0, mapId: 0, partitions: [1000, 0, 2500, 17], leaveDebris: true, checksum: true }));
    outputs.push(await exec.commit({ shuffleId: 0, mapId: 1, partitions: [0, 0, 0, 0] }));
    outputs.push(await exec.commit({ shuffleId: 2, mapId: '9007199254740993', partitions: [300_000, 5] }));
    for (let m = 2; m < 12; m++) outputs.push(await exec.commit({ shuffleId: 1, mapId: m, partitions: [m * 100, 1, 0, m] }));

    const status = await agent.waitForStatus((s) => s.persistedOutputs === outputs.length && s.pendingOutputs === 0);
    expect(status.state).toBe('serving');
    expect(status.failedFiles).toBe(0);

    // Exactly Spark's keys: no temp, attempt or checksum file, nothing else.
    expect(await listFiles(storeDir)).toEqual(expectedKeys('app-e2e', outputs));
    const store = new FileStore(storeDir);
    for (const o of outputs) {
      if (o.dataPath) expect(await readFile(join(storeDir, fallbackKey('app-e2e', o.shuffleId, shuffleFileName(o.shuffleId, o.mapId, 'data'))))).toEqual(o.data);
      expect(await readFile(join(storeDir, fallbackKey('app-e2e', o.shuffleId, shuffleFileName(o.shuffleId, o.mapId, 'index'))))).toEqual(encodeIndex(o.offsets));
      const n = o.offsets.length - 1;
      for (let r = 0; r < n; r++) {
        const got = await readPartitionsLikeSpark(store, 'app-e2e', o.shuffleId, o.mapId, r, r + 1);
        expect(got.equals(o.data.subarray(o.offsets[r], o.offsets[r + 1])), `${o.mapId} partition ${r}`).toBe(true);
      }
      expect((await readPartitionsLikeSpark(store, 'app-e2e', o.shuffleId, o.mapId, 0, n)).equals(o.data)).toBe(true);
    }

    const metrics = await (await fetch(`${agent.url}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`^shuffle_agent_persisted_outputs_total ${outputs.length}$`, 'm'));
    expect(metrics).toMatch(/^shuffle_agent_commit_to_persisted_seconds_count \d+$/m);
    expect((await fetch(`${agent.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${agent.url}/readyz`)).status).toBe(200);

    const exit = await agent.stop('SIGTERM');
    expect(exit.code).toBe(0);
  });

  it('keeps writing outputs whose executor directory Spark deleted on stop', async () => {
    const { local, storeDir } = await setup();
    // Store root under a file: every write fails until the file goes away.
    await mkdir(join(storeDir, '..'), { recursive: true });
    await writeFile(storeDir, 'blocker');
    const agent = await start(local, join(storeDir, 'root'));
    const exec = new SparkLikeExecutor([local]);
    const outputs: CommittedFiles[] = [];
    for (let m = 0; m < 5; m++) outputs.push(await exec.commit({ shuffleId: 4, mapId: m, partitions: [50_000, 70] }));
    // Once the agent holds the files open, Spark may delete them.
    await agent.waitForStatus((s) => s.pendingOutputs === 5 && s.heldOutputs === 5 && (s.failedFiles as number) >= 1);
    await exec.stop(); // Spark deletes blockmgr-* when the executor exits.
    await agent.waitForLog((l) => l.msg === 'executor directory removed; output kept');
    await rm(storeDir);
    await agent.waitForStatus((s) => s.persistedOutputs === 5 && s.pendingOutputs === 0, 30_000);
    for (const o of outputs) {
      const key = fallbackKey('app-e2e', 4, shuffleFileName(4, o.mapId, 'data'));
      expect((await readFile(join(storeDir, 'root', key))).equals(o.data)).toBe(true);
    }
    expect((await agent.stop()).code).toBe(0);
  });

  it('survives SIGKILL at any moment: restart, nothing lost, nothing torn, nothing twice', async () => {
    const { local, storeDir } = await setup();
    const exec = new SparkLikeExecutor([local]);
    const outputs: CommittedFiles[] = [];
    for (let round = 0; round < 4; round++) {
      const agent = await start(local, storeDir);
      // Commit while the agent is writing back, then kill it without warning.
      for (let m = 0; m < 15; m++) outputs.push(await exec.commit({ shuffleId: round, mapId: m, partitions: [200_000 + m * 997, 3] }));
      agent.kill('SIGKILL');
      await agent.exited;
    }
    const agent = await start(local, storeDir);
    await agent.waitForStatus((s) => s.pendingOutputs === 0 && s.persistedOutputs === outputs.length, 30_000);
    const files = await listFiles(storeDir);
    expect(files).toEqual(expectedKeys('app-e2e', outputs));
    for (const o of outputs) {
      const data = await readFile(join(storeDir, fallbackKey('app-e2e', o.shuffleId, shuffleFileName(o.shuffleId, o.mapId, 'data'))));
      expect(data.equals(o.data)).toBe(true);
    }
    const metrics = await (await fetch(`${agent.url}/metrics`)).text();
    // Whatever an earlier run stored whole was recognised and not copied again.
    expect(metrics).toMatch(/^shuffle_agent_already_stored_files_total \d+$/m);
  });

  it('reports bad input with the path, a metric and the status list, and never crashes', async () => {
    const { local, storeDir } = await setup();
    const agent = await start(local, storeDir, ['--rescan-interval', '0.2', '--incomplete-grace', '0.2']);
    const exec = new SparkLikeExecutor([local]);
    const dir = await exec.dirFor('shuffle_7_1_0.index');
    await writeFile(join(dir, 'shuffle_7_1_0.index'), Buffer.alloc(13));
    const good = await exec.commit({ shuffleId: 7, mapId: 2, partitions: [10, 10] });
    const status = await agent.waitForStatus((s) => (s.failed as Array<{ file: string }>).some((f) => f.file.endsWith('shuffle_7_1_0.index')) && s.persistedOutputs === 1);
    expect(status.failedFiles).toBe(1);
    const problem = (status.failed as Array<{ kind: string }>)[0];
    expect(problem?.kind).toBe('length-not-multiple-of-8');
    const line = await agent.waitForLog((l) => l.msg === 'local input problem');
    expect(line.path).toContain('shuffle_7_1_0.index');
    expect(await (await fetch(`${agent.url}/metrics`)).text()).toMatch(/^shuffle_agent_watch_problems_total\{kind="length-not-multiple-of-8"\} 1$/m);
    // Fixed by a later commit of the same output: it is picked up, the problem cleared.
    await exec.commit({ shuffleId: 7, mapId: 1, partitions: [4] });
    await agent.waitForStatus((s) => s.persistedOutputs === 2 && s.failedFiles === 0);
    expect(good.dataPath).toBeDefined();
    expect((await agent.stop()).code).toBe(0);
  });

  it('retries a full store until space is freed, losing nothing', async () => {
    const { local, base } = await setup();
    const mnt = await tmpfs(join(base, 'small-store'), 'size=2m');
    await writeFile(join(mnt, 'filler'), Buffer.alloc(1900 * 1024));
    const agent = await start(local, join(mnt, 'store'));
    const exec = new SparkLikeExecutor([local]);
    const o = await exec.commit({ shuffleId: 0, mapId: 3, partitions: [600_000] });
    const failing = await agent.waitForStatus((s) => (s.failed as Array<{ code: string }>).some((f) => f.code === 'ENOSPC'));
    expect(failing.pendingOutputs).toBe(1);
    await rm(join(mnt, 'filler'));
    await agent.waitForStatus((s) => s.persistedOutputs === 1 && s.failedFiles === 0, 40_000);
    const stored = await readFile(join(mnt, 'store', fallbackKey('app-e2e', 0, shuffleFileName(0, '3', 'data'))));
    expect(stored.equals(o.data)).toBe(true);
    expect(await (await fetch(`${agent.url}/metrics`)).text()).toMatch(/^shuffle_agent_writeback_errors_total\{kind="transient"\} [1-9]\d*$/m);
    expect((await listFiles(mnt)).filter((f) => f.includes('.partial-'))).toEqual([]);
    expect((await agent.stop()).code).toBe(0);
  });

  it('reports a read-only store as not ready, keeps outputs pending, recovers when it is writable', async () => {
    const { local, base } = await setup();
    const mnt = await tmpfs(join(base, 'ro-store'), 'ro,size=4m');
    const agent = await start(local, mnt);
    const exec = new SparkLikeExecutor([local]);
    const o = await exec.commit({ shuffleId: 1, mapId: 1, partitions: [1234, 5] });
    const failing = await agent.waitForStatus((s) => (s.failed as Array<{ kind: string; code: string }>).some((f) => f.kind === 'permanent' && f.code === 'EROFS'));
    expect(failing.pendingOutputs).toBe(1);
    const notReady = await fetch(`${agent.url}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.text()).toMatch(/store refuses writes \(EROFS\)/);
    execFileSync('mount', ['-o', 'remount,rw', mnt]);
    await agent.waitForStatus((s) => s.persistedOutputs === 1 && s.failedFiles === 0, 40_000);
    expect((await fetch(`${agent.url}/readyz`)).status).toBe(200);
    expect((await readFile(join(mnt, fallbackKey('app-e2e', 1, shuffleFileName(1, '1', 'data'))))).equals(o.data)).toBe(true);
    expect((await agent.stop()).code).toBe(0);
  });

  it('exits 2 with a message naming a bad flag', () => {
    let err: { status: number; stderr: Buffer } | undefined;
    try {
      execFileSync(process.execPath, [CLI, 'run', '--upload-concurrency', 'lots'], { stdio: 'pipe' });
    } catch (e) {
      err = e as { status: number; stderr: Buffer };
    }
    expect(err?.status).toBe(2);
    expect(err?.stderr.toString()).toMatch(/--upload-concurrency: expected an integer/);
  });

  it('a sidecar claims its app id in the store while it starts, before any output; a store that names another namespace refuses the app before its first output', async () => {
    const { local, storeDir } = await setup();
    const agent = await start(local, storeDir, ['--pod-namespace', 'team-a']);
    // Nothing committed yet: the marker comes from the start-up claim.
    const marker = await pollUntil('the owner marker', () => readFile(join(storeDir, 'app-e2e', '_owner'), 'utf8').catch(() => ''), (m) => m !== '', 10_000, 25);
    expect(parseOwnerMarker(marker)).toBe('team-a');
    expect(await listFiles(storeDir)).toEqual([]);
    await agent.stop('SIGTERM');

    // Another namespace's agent with the same app id is refused at start, and then stores nothing.
    const other = await start(join(local, '..', 'local-b'), storeDir, ['--pod-namespace', 'team-b']);
    const refused = await other.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('app id refused for this namespace'));
    expect(refused).toMatchObject({ app: 'app-e2e', namespace: 'team-b', reason: 'the store holds this app id for another namespace' });
    const exec = new SparkLikeExecutor([join(local, '..', 'local-b')]);
    await exec.commit({ shuffleId: 0, mapId: 0, partitions: [100, 200] });
    await other.waitForStatus((s) => s.droppedOutputs === 1 && s.pendingOutputs === 0);
    expect(await listFiles(storeDir)).toEqual([]);
    expect(parseOwnerMarker(await readFile(join(storeDir, 'app-e2e', '_owner'), 'utf8'))).toBe('team-a');
  });
});
