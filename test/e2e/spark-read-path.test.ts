/**
 * The plugin's read path (spark.shuffle.manager=AgentShuffleManager) on real Spark: a lost
 * executor's outputs are re-pointed and read from the store by the plugin, and a copy that cannot
 * be read after the re-point costs a recompute of exactly that output, never the job and never a
 * healthy reader's outputs. The full scenario suite (503s, heap, 2 GiB, AQE) is
 * spark-read-failures.test.ts; this is the read path's own smoke test.
 */
import { rm } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { SPARK_LINES } from '../support/spark.js';
import { busiest, computeAndStore, localShuffleFiles, MAPS, SPARK_TEST_TIMEOUT, startRun, stopRuns, storedFiles } from '../support/spark-run.js';

const T = SPARK_TEST_TIMEOUT;

afterEach(stopRuns);

describe.each(SPARK_LINES)('Spark $version: the plugin read path', (line) => {
  it('reads the re-pointed copies itself, and a copy deleted after the re-point costs exactly its own recompute', async () => {
    const run = await startRun(line, { plugin: true });
    const { driver } = run;
    await computeAndStore(run);
    await run.agent!.stop('SIGKILL'); // nothing more reaches the store
    const [victim, held] = busiest((await driver.counts()).mapTasksByExecutor);
    const victimIndexes = [...(await localShuffleFiles(driver.executorDirs(victim))).keys()].filter((n) => n.endsWith('.index'));
    expect(victimIndexes).toHaveLength(held);

    await driver.killExecutor(victim);
    const m = await driver.waitForPlugin((x) => Number(x.executorsRecovered) >= 1);
    expect(m).toMatchObject({ outputsRepointed: held, outputsRecomputed: 0 });

    // First read after the loss: every block of the lost outputs comes through the plugin's reader.
    expect(await driver.ok({ cmd: 'action', name: 'a' })).toMatchObject({ correct: true, mapPartitionsComputed: MAPS });
    const read = await driver.waitForPlugin((x) => Number(x.fallbackBlocksRead) > 0);
    expect(Number(read.fallbackReadFailures)).toBe(0);
    expect((await driver.counts()).mapTasks).toBe(MAPS);

    // A lifecycle rule (or gc) takes the copies of two of the lost outputs.
    const stored = await storedFiles(run);
    const gone = victimIndexes.slice(0, 2);
    for (const index of gone) {
      await rm(stored.get(index) as string);
      await rm(stored.get(index.replace(/\.index$/, '.data')) as string, { force: true });
    }
    const second = await driver.ok({ cmd: 'action', name: 'a' });
    // Exactly the two outputs whose copies went are recomputed; the healthy reader keeps its own.
    expect(second).toMatchObject({ correct: true, mapPartitionsComputed: MAPS + gone.length });
    const after = await driver.counts();
    expect(after.mapTasks).toBe(MAPS + gone.length);
    const fm = await driver.pluginMetrics();
    expect(Number(fm.outputsUnregisteredAfterFailedRead)).toBe(gone.length);
    expect(Number(fm.readFailuresReported)).toBeGreaterThanOrEqual(1);
    // No executor was taken for lost because of a fetch failure.
    expect(Number(fm.executorsRecovered)).toBe(1);
  }, T);
});
