/**
 * Real Spark (local-cluster: separate executor JVMs), the built agent watching the executors'
 * local dirs and writing to a file:// fallback store, and the plugin on the driver. An executor
 * is SIGKILLed; the next action must be correct and, with the plugin, run no map task again.
 */
import { mkdir, open, readdir, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentProcess } from '../support/agent-process.js';
import { pluginConf, SPARK_LINES, SparkDriver, type SparkLine } from '../support/spark.js';
import { tempDir } from '../support/temp-dir.js';

interface Run {
  dir: string;
  driver: SparkDriver;
  agent?: AgentProcess;
  cleanup: () => Promise<void>;
}

const runs: Run[] = [];

afterEach(async () => {
  for (const r of runs.splice(0)) {
    await r.driver.stop().catch(() => undefined);
    await r.agent?.stop('SIGKILL').catch(() => undefined);
    await r.cleanup();
  }
});

/** A driver (with or without the plugin) and an agent on its executors' local dirs. */
async function startRun(line: SparkLine, opts: { plugin: boolean; agent?: boolean; conf?: Record<string, string> }): Promise<Run> {
  const t = await tempDir('ssa-spark-');
  const local = join(t.path, 'local');
  const store = join(t.path, 'fallback');
  await mkdir(local);
  await mkdir(store);
  const driver = await SparkDriver.start(line, {
    localDir: local,
    conf: { ...(opts.plugin ? pluginConf(`file://${store}/`) : {}), ...opts.conf },
  });
  const run: Run = { dir: t.path, driver, cleanup: t.cleanup };
  runs.push(run);
  if (opts.agent !== false) {
    run.agent = await AgentProcess.start([
      '--local-dirs', local,
      '--local-dirs-layout', 'spark-*/executor-*',
      '--app-id', driver.appId,
      '--store', `file://${store}`,
      '--rescan-interval', '5',
    ]);
  }
  return run;
}

/** Every shuffle object under the store's app prefix, by file name (not the plugin's heartbeat). */
async function storedFiles(run: Run): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(join(d, e.name));
      else if (e.name.startsWith('shuffle_')) out.set(e.name, join(d, e.name));
    }
  };
  await walk(join(run.dir, 'fallback', run.driver.appId)).catch(() => undefined);
  return out;
}

/** Wait until the agent reports `n` outputs persisted and none pending. */
async function persisted(run: Run, n: number): Promise<void> {
  await run.agent!.waitForStatus((s) => Number(s.persistedOutputs) >= n && Number(s.pendingOutputs) === 0, 60_000);
}

const MAPS = 8;
const SHUFFLE = { cmd: 'define', name: 'a', rows: 40_000, maps: MAPS, reducers: 4, keys: 97, pad: 64 };
const T = 300_000;

/** Every shuffle file under some local dirs, by name. */
async function localShuffleFiles(dirs: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(join(d, e.name));
      else if (/^shuffle_\d+_\d+_0\.(index|data)$/.test(e.name)) out.set(e.name, join(d, e.name));
    }
  };
  for (const d of dirs) await walk(d);
  return out;
}

/** The executor that ran the most map tasks, and how many. */
function busiest(byExecutor: Record<string, number>): [string, number] {
  return Object.entries(byExecutor).sort((a, b) => b[1] - a[1])[0] as [string, number];
}

describe.each(SPARK_LINES)('Spark $version: an executor SIGKILLed', (line) => {
  it('after the map stage: with the plugin the next action is correct and runs no map task again', async () => {
    const run = await startRun(line, { plugin: true });
    const { driver } = run;
    await driver.ok(SHUFFLE);
    const first = await driver.ok({ cmd: 'action', name: 'a' });
    expect(first).toMatchObject({ correct: true, mapPartitionsComputed: MAPS });
    await persisted(run, MAPS);

    // What Spark committed reached the store byte for byte, and nothing else did.
    const stored = await storedFiles(run);
    const local = await localShuffleFiles([join(run.dir, 'local')]);
    expect([...stored.keys()].sort()).toEqual([...local.keys()].sort());
    expect(stored.size).toBeGreaterThanOrEqual(MAPS + 1);
    for (const [name, path] of local) {
      const [a, b] = await Promise.all([readAll(path), readAll(stored.get(name) as string)]);
      expect(Buffer.compare(a, b), name).toBe(0);
    }

    const before = await driver.counts();
    expect(before.mapTasks).toBe(MAPS);
    const [victim, held] = busiest(before.mapTasksByExecutor);
    await driver.killExecutor(victim);
    const m = await driver.waitForPlugin((x) => Number(x.executorsRecovered) >= 1);
    expect(m).toMatchObject({ outputsRepointed: held, outputsRecomputed: 0 });

    const second = await driver.ok({ cmd: 'action', name: 'a' });
    expect(second).toMatchObject({ correct: true, mapPartitionsComputed: MAPS });
    const after = await driver.counts();
    expect(after.mapTasks).toBe(MAPS);
    expect(after.failedStages).toBe(0);
  }, T);

  it('after the map stage: without the plugin (the same run) the lost map outputs are recomputed', async () => {
    const run = await startRun(line, { plugin: false });
    const { driver } = run;
    await driver.ok(SHUFFLE);
    await driver.ok({ cmd: 'action', name: 'a' });
    await persisted(run, MAPS);
    const [victim, held] = busiest((await driver.counts()).mapTasksByExecutor);

    await driver.killExecutor(victim);
    const second = await driver.ok({ cmd: 'action', name: 'a' });
    expect(second).toMatchObject({ correct: true, mapPartitionsComputed: MAPS + held });
    expect((await driver.counts()).mapTasks).toBe(MAPS + held);
  }, T);

  it('while reduce tasks run: the job completes correctly and no map task runs again', async () => {
    const run = await startRun(line, { plugin: true });
    const { driver } = run;
    await driver.ok({ ...SHUFFLE, reducers: 6 });
    await driver.ok({ cmd: 'action', name: 'a' });
    await persisted(run, MAPS);
    const [victim] = busiest((await driver.counts()).mapTasksByExecutor);

    const marker = join(run.dir, 'reducing');
    const action = driver.cmd({ cmd: 'action', name: 'a', slowReduce: 2, marker });
    await waitForFile(`${marker}.0`);
    await driver.killExecutor(victim, { whileBusy: true });
    const second = await action;
    expect(second).toMatchObject({ ok: true, correct: true, mapPartitionsComputed: MAPS });
    const after = await driver.counts();
    expect(after.mapTasks).toBe(MAPS);
  }, T);

  it('with outputs not yet stored (agent stopped): exactly those are recomputed, the stored ones are not', async () => {
    const run = await startRun(line, { plugin: true });
    const { driver } = run;
    await driver.ok(SHUFFLE);
    await driver.ok({ cmd: 'action', name: 'a' });
    await persisted(run, MAPS);
    const afterA = await driver.counts();

    run.agent!.kill('SIGSTOP'); // the agent is alive but stores nothing more
    try {
      await driver.ok({ ...SHUFFLE, name: 'b', keys: 89 });
      await driver.ok({ cmd: 'action', name: 'b' });
      const afterB = await driver.counts();
      const [victim, heldAll] = busiest(afterB.mapTasksByExecutor);
      const heldA = afterA.mapTasksByExecutor[victim] ?? 0;
      const heldB = heldAll - heldA;
      expect(heldB).toBeGreaterThan(0);

      await driver.killExecutor(victim);
      const m = await driver.waitForPlugin((x) => Number(x.executorsRecovered) >= 1);
      expect(m).toMatchObject({ outputsRepointed: heldA, outputsRecomputed: heldB });

      expect(await driver.ok({ cmd: 'action', name: 'a' })).toMatchObject({ correct: true, mapPartitionsComputed: MAPS });
      expect(await driver.ok({ cmd: 'action', name: 'b' })).toMatchObject({ correct: true, mapPartitionsComputed: MAPS + heldB });
      const after = await driver.counts();
      expect(after.mapTasks).toBe(2 * MAPS + heldB);
      expect(after.failedStages).toBe(0);
    } finally {
      run.agent!.kill('SIGCONT');
    }
  }, T);

  it('with a truncated copy (index longer than the data object): that output is recomputed, never read', async () => {
    const run = await startRun(line, { plugin: true });
    const { driver } = run;
    await driver.ok(SHUFFLE);
    await driver.ok({ cmd: 'action', name: 'a' });
    await persisted(run, MAPS);
    await run.agent!.stop('SIGKILL'); // it dies with the node; the store is all that is left
    const [victim, held] = busiest((await driver.counts()).mapTasksByExecutor);

    const stored = await storedFiles(run);
    const victimData = [...(await localShuffleFiles(driver.executorDirs(victim))).keys()].filter((n) => n.endsWith('.data'));
    const target = victimData.find((n) => (stored.has(n)));
    expect(target).toBeDefined();
    const path = stored.get(target as string) as string;
    await truncate(path, (await stat(path)).size - 1);

    await driver.killExecutor(victim);
    const m = await driver.waitForPlugin((x) => Number(x.executorsRecovered) >= 1);
    expect(m).toMatchObject({ outputsRepointed: held - 1, outputsRecomputed: 1 });
    const second = await driver.ok({ cmd: 'action', name: 'a' });
    expect(second).toMatchObject({ correct: true, mapPartitionsComputed: MAPS + 1 });
    const after = await driver.counts();
    expect(after.mapTasks).toBe(MAPS + 1);
    expect(after.fetchFailures).toBe(0);
  }, T);
});

/** Resolves when `path` exists (a reduce task created it). */
async function waitForFile(path: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await stat(path);
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`${path} never appeared`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

async function readAll(path: string): Promise<Buffer> {
  const size = (await stat(path)).size;
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(size);
    await fh.read(buf, 0, size, 0);
    return buf;
  } finally {
    await fh.close();
  }
}
