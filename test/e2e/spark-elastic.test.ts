/**
 * Elastic executors without recompute (real Spark, local-cluster): dynamic allocation releases
 * idle executors that hold shuffle data (no shuffle tracking, no shuffle service: the plugin's
 * reliable storage is what lets Spark do it), and a decommissioned executor exits without Spark
 * copying its shuffle files; in both cases the next stage reads the copies and no map task runs
 * again.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SPARK_LINES, waitForExit } from '../kit/spark-harness.js';
import { busiest, computeAndStore, filesUnder, isAppMarker, MAPS, SPARK_TEST_TIMEOUT, startRun, stopRuns } from '../support/spark-run.js';

const T = SPARK_TEST_TIMEOUT;

afterEach(stopRuns);

/** inode and mtime of every stored object: a copy written again by Spark changes both. */
async function storeIdentity(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const [name, path] of await filesUnder([dir], (n) => !isAppMarker(n))) {
    const st = await stat(path);
    out.set(name, `${st.ino}:${st.mtimeMs}`);
  }
  return out;
}

describe.each(SPARK_LINES)('Spark $version: elastic executors', (line) => {
  it('dynamic allocation without shuffle tracking releases idle executors holding shuffle data; the next stage re-runs no map task', async () => {
    const run = await startRun(line, {
      plugin: true,
      conf: {
        'spark.dynamicAllocation.enabled': 'true',
        'spark.dynamicAllocation.shuffleTracking.enabled': 'false',
        'spark.shuffle.service.enabled': 'false',
        'spark.dynamicAllocation.minExecutors': '0',
        'spark.dynamicAllocation.initialExecutors': '2',
        'spark.dynamicAllocation.maxExecutors': '2',
        'spark.dynamicAllocation.executorIdleTimeout': '2s',
      },
    });
    const { driver } = run;
    await computeAndStore(run);
    const before = await driver.counts();
    const holders = Object.keys(before.mapTasksByExecutor);
    expect(holders.length).toBeGreaterThan(0);

    // Every executor that holds map outputs is released once idle, and its outputs re-pointed.
    await driver.waitForCounts((c) => holders.every((h) => c.removedExecutors.includes(h)), 120_000);
    const m = await driver.waitForPlugin((x) => Number(x.outputsRepointed) >= MAPS, 60_000);
    expect(m).toMatchObject({ outputsRepointed: MAPS, outputsRecomputed: 0 });

    // New executors come for the next job; they read every map output from the store.
    expect(await driver.ok({ cmd: 'action', name: 'a' })).toMatchObject({ correct: true, mapPartitionsComputed: MAPS });
    const after = await driver.counts();
    expect(after.mapTasks).toBe(MAPS);
    expect(after.failedStages).toBe(0);
  }, T);

  it('a decommissioned executor exits without Spark copying shuffle files, and nothing is recomputed', async () => {
    const run = await startRun(line, {
      plugin: true,
      conf: {
        'spark.decommission.enabled': 'true',
        'spark.storage.decommission.enabled': 'true',
        'spark.storage.decommission.shuffleBlocks.enabled': 'false',
        'spark.storage.decommission.rddBlocks.enabled': 'false',
      },
    });
    const { driver } = run;
    await computeAndStore(run);
    const stored = await storeIdentity(join(run.dir, 'fallback', driver.appId));
    const [victim, held] = busiest((await driver.counts()).mapTasksByExecutor);

    // The signal Kubernetes' decom.sh sends: the executor decommissions itself and exits.
    const pid = driver.executorPids().get(victim) as number;
    const t0 = Date.now();
    process.kill(pid, 'SIGPWR');
    await waitForExit(pid, 60_000);
    const exitMs = Date.now() - t0;
    await driver.waitForCounts((c) => c.removedExecutors.includes(victim), 120_000);
    const m = await driver.waitForPlugin((x) => Number(x.executorsRecovered) >= 1);
    expect(m).toMatchObject({ outputsRepointed: held, outputsRecomputed: 0 });
    // Spark copied nothing: every stored object is the agent's, untouched.
    expect(await storeIdentity(join(run.dir, 'fallback', driver.appId))).toEqual(stored);

    expect(await driver.ok({ cmd: 'action', name: 'a' })).toMatchObject({ correct: true, mapPartitionsComputed: MAPS });
    const after = await driver.counts();
    expect(after.mapTasks).toBe(MAPS);
    expect(after.failedStages).toBe(0);
    expect(exitMs).toBeLessThan(60_000);
  }, T);
});
