/**
 * The plugin's read path (spark.shuffle.manager=AgentShuffleManager) on real Spark: a lost
 * executor's outputs are re-pointed and read from the store by the plugin, and a copy that cannot
 * be read after the re-point costs a recompute of exactly that output, never the job and never a
 * healthy reader's outputs. The full scenario suite (503s, heap, 2 GiB, AQE) is
 * spark-read-failures.test.ts; this is the read path's own smoke test.
 */
import { rm } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { SPARK_LINES } from '../kit/spark-harness.js';
import { busiest, computeAndStore, localShuffleFiles, MAPS, SPARK_TEST_TIMEOUT, startRun, stopRuns, storedFiles } from '../support/spark-run.js';

const T = SPARK_TEST_TIMEOUT;

afterEach(stopRuns);

describe.each(SPARK_LINES)('Spark $version: the plugin read path', (line) => {
  it('reads the re-pointed copies itself; a copy deleted after the re-point costs exactly its own recompute', async () => {
    // Every block its own ranged GET: with the default whole local copies of small objects, an
    // executor that read an output once never asks the store for its data again, so the second
    // half (a data object gone while its index is cached) would not reach the store.
    const run = await startRun(line, { plugin: true, conf: { 'spark.shuffleAgent.read.wholeObjectMaxBytes': '0' } });
    const { driver } = run;
    await computeAndStore(run);
    await run.agent!.stop('SIGKILL'); // nothing more reaches the store
    const [victim, held] = busiest((await driver.counts()).mapTasksByExecutor);
    const victimIndexes = [...(await localShuffleFiles(driver.executorDirs(victim))).keys()].filter((n) => n.endsWith('.index'));
    expect(victimIndexes).toHaveLength(held);

    await driver.killExecutor(victim);
    const m = await driver.waitForPlugin((x) => Number(x.executorsRecovered) >= 1);
    expect(m).toMatchObject({ outputsRepointed: held, outputsRecomputed: 0 });

    // A lifecycle rule (or gc) takes one copy after the re-point, before any reducer read it: its
    // index cannot be read.
    const stored = await storedFiles(run);
    const drop = async (index: string): Promise<void> => {
      await rm(stored.get(index) as string);
      await rm(stored.get(index.replace(/\.index$/, '.data')) as string, { force: true });
    };
    await drop(victimIndexes[0]!);
    const first = await driver.ok({ cmd: 'action', name: 'a' });
    // Exactly that output is recomputed; every other block came through the plugin's reader, and
    // the healthy reader kept its own outputs.
    expect(first).toMatchObject({ correct: true, mapPartitionsComputed: MAPS + 1 });
    expect((await driver.counts()).mapTasks).toBe(MAPS + 1);
    const read = await driver.waitForPlugin((x) => Number(x.fallbackBlocksRead) > 0 && Number(x.outputsUnregisteredAfterFailedRead) >= 1);
    expect(Number(read.outputsUnregisteredAfterFailedRead)).toBe(1);

    // Another copy goes after its index was read and cached: now its data read fails.
    await drop(victimIndexes[1]!);
    const second = await driver.ok({ cmd: 'action', name: 'a' });
    expect(second).toMatchObject({ correct: true, mapPartitionsComputed: MAPS + 2 });
    expect((await driver.counts()).mapTasks).toBe(MAPS + 2);
    const fm = await driver.pluginMetrics();
    expect(Number(fm.outputsUnregisteredAfterFailedRead)).toBe(2);
    expect(Number(fm.readFailuresReported)).toBeGreaterThanOrEqual(2);
    // No executor was taken for lost because of a fetch failure.
    expect(Number(fm.executorsRecovered)).toBe(1);
  }, T);
});
