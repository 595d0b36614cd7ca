/**
 * Real Spark (local-cluster: separate executor JVMs), the built agent watching the executors'
 * local dirs and writing to a file:// fallback store, and the plugin on the driver. An executor
 * is SIGKILLed; the next action must be correct and, with the plugin, run no map task again.
 */
import { mkdir, open, readdir, stat } from 'node:fs/promises';
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

/** Every object under the store's app prefix, by file name. */
async function storedFiles(run: Run): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(join(d, e.name));
      else out.set(e.name, join(d, e.name));
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

describe.each(SPARK_LINES)('Spark $version: executor SIGKILLed after the map stage', (line) => {
  it('with the plugin, the next action is correct and runs no map task again', async () => {
    const run = await startRun(line, { plugin: true });
    const { driver } = run;
    await driver.ok(SHUFFLE);
    const first = await driver.ok({ cmd: 'action', name: 'a' });
    expect(first).toMatchObject({ correct: true, mapPartitionsComputed: MAPS });
    await persisted(run, MAPS);
    const before = await driver.counts();
    expect(before.mapTasks).toBe(MAPS);
    const victim = Object.keys(before.mapTasksByExecutor)[0] as string;
    const held = before.mapTasksByExecutor[victim] as number;
    expect(held).toBeGreaterThan(0);

    await driver.killExecutor(victim);
    const m = await driver.waitForPlugin((x) => Number(x.executorsRecovered) >= 1);
    expect(m).toMatchObject({ outputsRepointed: held, outputsRecomputed: 0 });

    const second = await driver.ok({ cmd: 'action', name: 'a' });
    expect(second).toMatchObject({ correct: true, mapPartitionsComputed: MAPS });
    const after = await driver.counts();
    expect(after.mapTasks).toBe(MAPS);
    expect(after.failedStages).toBe(0);
  });

  it('without the plugin (the same run), the lost map outputs are recomputed', async () => {
    const run = await startRun(line, { plugin: false });
    const { driver } = run;
    await driver.ok(SHUFFLE);
    await driver.ok({ cmd: 'action', name: 'a' });
    await persisted(run, MAPS);
    const before = await driver.counts();
    const victim = Object.keys(before.mapTasksByExecutor)[0] as string;
    const held = before.mapTasksByExecutor[victim] as number;

    await driver.killExecutor(victim);
    const second = await driver.ok({ cmd: 'action', name: 'a' });
    expect(second).toMatchObject({ correct: true, mapPartitionsComputed: MAPS + held });
    expect((await driver.counts()).mapTasks).toBe(MAPS + held);
  });

  it('the agent stores exactly the map outputs Spark committed, byte for byte', async () => {
    const run = await startRun(line, { plugin: true });
    await run.driver.ok(SHUFFLE);
    await run.driver.ok({ cmd: 'action', name: 'a' });
    await persisted(run, MAPS);
    const stored = await storedFiles(run);
    const local = new Map<string, string>();
    const walk = async (d: string): Promise<void> => {
      for (const e of await readdir(d, { withFileTypes: true })) {
        if (e.isDirectory()) await walk(join(d, e.name));
        else if (/^shuffle_\d+_\d+_0\.(index|data)$/.test(e.name)) local.set(e.name, join(d, e.name));
      }
    };
    await walk(join(run.dir, 'local'));
    expect([...stored.keys()].sort()).toEqual([...local.keys()].sort());
    expect(stored.size).toBeGreaterThanOrEqual(MAPS * 2 - 1); // an empty output has no data file
    for (const [name, path] of local) {
      const [a, b] = await Promise.all([readAll(path), readAll(stored.get(name) as string)]);
      expect(Buffer.compare(a, b), name).toBe(0);
    }
  });
});

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
