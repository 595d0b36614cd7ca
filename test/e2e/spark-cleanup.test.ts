/**
 * Real Spark (local-cluster), the built agent writing to a file:// fallback store, the plugin on
 * the driver: a shuffle the driver drops loses its copies while the app runs, the app's heartbeat
 * is refreshed, and Spark's own app-end clean-up (`fallbackStorage.cleanUp`) removes the app's
 * prefix after stop — or, with both switched off, everything stays.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentProcess } from '../kit/agent-process.js';
import { SPARK_LINES, type SparkLine } from '../kit/spark-harness.js';
import { until } from '../kit/wait.js';
import { filesUnder, SPARK_TEST_TIMEOUT, startRun, stopRuns, type Run } from '../support/spark-run.js';

afterEach(stopRuns);

/** A run with the plugin and the agent; `store` is its file:// fallback dir. */
async function startCleanupRun(line: SparkLine, conf: Record<string, string>): Promise<Run & { store: string; agent: AgentProcess }> {
  const run = await startRun(line, { plugin: true, conf });
  return { ...run, store: join(run.dir, 'fallback'), agent: run.agent as AgentProcess };
}

/** Names of the Spark shuffle files under `dir` (recursively), sorted; empty when `dir` is absent. */
async function shuffleFiles(dir: string): Promise<string[]> {
  return [...(await filesUnder([dir], (n) => n.startsWith('shuffle_'))).keys()].sort();
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

const MAPS = 6;
const define = (name: string): Record<string, unknown> => ({ cmd: 'define', name, rows: 20_000, maps: MAPS, reducers: 3, keys: 97, pad: 32 });
const T = SPARK_TEST_TIMEOUT;

describe.each(SPARK_LINES)('Spark $version: cleaning up the copies', (line) => {
  it(
    "a dropped shuffle's copies are deleted while the app runs, the other shuffle's stay; Spark's fallback cleanUp removes the app prefix at stop",
    async () => {
      const run = await startCleanupRun(line, {
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
      await until(async () => (await stat(heartbeat)).mtimeMs > first, 'the heartbeat to be rewritten', 30_000, 100);

      expect(await driver.ok({ cmd: 'dropShuffle', name: 'a' })).toMatchObject({ shuffleId: a });
      await until(async () => !(await exists(join(appDir, String(a)))), `shuffle ${a}'s prefix to be deleted`, 30_000, 100);
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
    const run = await startCleanupRun(SPARK_LINES[0]!, { 'spark.shuffleAgent.cleanup.shuffles': 'false' });
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
