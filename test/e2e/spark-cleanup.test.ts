/**
 * Real Spark (local-cluster), the built agent writing to a file:// fallback store, the plugin on
 * the driver: a shuffle the driver drops loses its copies while the app runs, the app's heartbeat
 * is refreshed, and Spark's own app-end clean-up (`fallbackStorage.cleanUp`) removes the app's
 * prefix after stop — or, with both switched off, everything stays.
 */
import { mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentProcess } from '../support/agent-process.js';
import { pluginConf, SPARK_LINES, SparkDriver, type SparkLine } from '../support/spark.js';
import { tempDir } from '../support/temp-dir.js';

interface Run {
  store: string;
  driver: SparkDriver;
  agent: AgentProcess;
  cleanup: () => Promise<void>;
}

const runs: Run[] = [];

afterEach(async () => {
  for (const r of runs.splice(0)) {
    await r.driver.stop().catch(() => undefined);
    await r.agent.stop('SIGKILL').catch(() => undefined);
    await r.cleanup();
  }
});

async function startRun(line: SparkLine, conf: Record<string, string>): Promise<Run> {
  const t = await tempDir('ssa-cleanup-');
  const local = join(t.path, 'local');
  const store = join(t.path, 'fallback');
  await mkdir(local);
  await mkdir(store);
  const driver = await SparkDriver.start(line, { localDir: local, conf: { ...pluginConf(`file://${store}/`), ...conf } });
  const agent = await AgentProcess.start([
    '--local-dirs', local,
    '--local-dirs-layout', 'spark-*/executor-*',
    '--app-id', driver.appId,
    '--store', `file://${store}`,
    '--rescan-interval', '5',
  ]).catch(async (err: unknown) => {
    await driver.stop();
    await t.cleanup();
    throw err;
  });
  const run = { store, driver, agent, cleanup: t.cleanup };
  runs.push(run);
  return run;
}

/** Names of the Spark shuffle files under `dir` (recursively); empty when `dir` is absent. */
async function shuffleFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(join(d, e.name));
      else if (e.name.startsWith('shuffle_')) out.push(e.name);
    }
  };
  await walk(dir).catch((err: unknown) => {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  });
  return out.sort();
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Polls `pred` until it holds or the deadline passes. */
async function until(what: string, pred: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const MAPS = 6;
const define = (name: string): Record<string, unknown> => ({ cmd: 'define', name, rows: 20_000, maps: MAPS, reducers: 3, keys: 97, pad: 32 });
const T = 300_000;

describe.each(SPARK_LINES)('Spark $version: cleaning up the copies', (line) => {
  it(
    "a dropped shuffle's copies are deleted while the app runs, the other shuffle's stay; Spark's fallback cleanUp removes the app prefix at stop",
    async () => {
      const run = await startRun(line, {
        'spark.shuffleAgent.heartbeat.interval': '1s',
        'spark.storage.decommission.fallbackStorage.cleanUp': 'true',
      });
      const { driver } = run;
      const appDir = join(run.store, driver.appId);
      for (const name of ['a', 'b']) {
        await driver.ok(define(name));
        expect(await driver.ok({ cmd: 'action', name })).toMatchObject({ correct: true, mapPartitionsComputed: MAPS });
      }
      await run.agent.waitForStatus((s) => Number(s.persistedOutputs) >= 2 * MAPS && Number(s.pendingOutputs) === 0, 60_000);
      const a = Number((await driver.ok({ cmd: 'shuffleId', name: 'a' })).shuffleId);
      const b = Number((await driver.ok({ cmd: 'shuffleId', name: 'b' })).shuffleId);
      expect(a).not.toBe(b);
      const storedB = await shuffleFiles(join(appDir, String(b)));
      expect((await shuffleFiles(join(appDir, String(a)))).length).toBeGreaterThanOrEqual(MAPS);
      expect(storedB.length).toBeGreaterThanOrEqual(MAPS);

      // The heartbeat is there and refreshed (every second here).
      const heartbeat = join(appDir, '_heartbeat');
      const first = (await stat(heartbeat)).mtimeMs;
      await until('the heartbeat to be rewritten', async () => (await stat(heartbeat)).mtimeMs > first);

      expect(await driver.ok({ cmd: 'dropShuffle', name: 'a' })).toMatchObject({ shuffleId: a });
      await until(`shuffle ${a}'s prefix to be deleted`, async () => !(await exists(join(appDir, String(a)))));
      expect(await shuffleFiles(join(appDir, String(b)))).toEqual(storedB);
      expect(await exists(heartbeat)).toBe(true);
      // The app goes on: b's shuffle is still whole and read without recomputation.
      expect(await driver.ok({ cmd: 'action', name: 'b' })).toMatchObject({ correct: true, mapPartitionsComputed: MAPS });

      await driver.stop();
      // SparkContext.stop stops the plugin (heartbeat writes finished) before FallbackStorage.cleanUp.
      expect(await exists(appDir)).toBe(false);
    },
    T,
  );
});

describe(`Spark ${SPARK_LINES[0]!.version}: cleanup switched off`, () => {
  it("a dropped shuffle's copies and the app prefix stay after stop", async () => {
    const run = await startRun(SPARK_LINES[0]!, { 'spark.shuffleAgent.cleanup.shuffles': 'false' });
    const { driver } = run;
    const appDir = join(run.store, driver.appId);
    await driver.ok(define('a'));
    expect(await driver.ok({ cmd: 'action', name: 'a' })).toMatchObject({ correct: true });
    await run.agent.waitForStatus((s) => Number(s.persistedOutputs) >= MAPS && Number(s.pendingOutputs) === 0, 60_000);
    const { shuffleId } = await driver.ok({ cmd: 'dropShuffle', name: 'a' });
    const stored = await shuffleFiles(join(appDir, String(shuffleId)));
    expect(stored.length).toBeGreaterThanOrEqual(MAPS);
    // Stopping waits for deletes the plugin queued; with cleanup off there is none, and Spark's
    // fallbackStorage.cleanUp is off by default.
    await driver.stop();
    expect(await shuffleFiles(join(appDir, String(shuffleId)))).toEqual(stored);
    expect(await exists(join(appDir, '_heartbeat'))).toBe(true);
  }, T);
});
