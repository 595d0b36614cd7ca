/**
 * Issue 16, point 3, on a file:// store: real Spark (local-cluster, separate executor JVMs), the
 * built agent copying every committed map output, the plugin with its read path
 * (`spark.shuffle.manager`). An executor is SIGKILLed and its outputs re-pointed to their copies;
 * then some copies cannot be read. Each test asserts the job's result, how many map tasks ran
 * again and WHICH outputs (the TaskCounter listener lists every map task with its partition,
 * executor and map id).
 *
 * One app per Spark line serves both tests (each test makes its own shuffles and kills its own
 * executor; the standalone master starts a replacement): starting an app costs more than a test.
 */
import { rm } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busiestOf, computed, copyNames, countersWhen, currentOutputs, killAndRepoint, labels, pluginCounters, type MapOutput } from '../support/map-outputs.js';
import { SPARK_LINES } from '../kit/spark-harness.js';
import { MAPS, persisted, SHUFFLE, SPARK_TEST_TIMEOUT, startRun, stopRuns, storedFiles, type Run } from '../support/spark-run.js';

const T = SPARK_TEST_TIMEOUT;

/** Delete `outputs`' copies from the file store, as a lifecycle rule or `gc` would. */
async function deleteCopies(run: Run, outputs: MapOutput[]): Promise<void> {
  const stored = await storedFiles(run);
  for (const name of outputs.flatMap(copyNames)) {
    const path = stored.get(name);
    // Every output's index is stored; its data object is absent only when all partitions are empty.
    if (path === undefined && name.endsWith('.index')) throw new Error(`${name} is not in the store`);
    if (path !== undefined) await rm(path);
  }
}

describe.each(SPARK_LINES)('Spark $version: copies that cannot be read after the re-point (file:// store)', (line) => {
  let run: Run;

  beforeAll(async () => {
    run = await startRun(line, {
      plugin: true,
      conf: {
        // A sort-merge join, so that the SQL plan has three shuffles (a broadcast has one less).
        'spark.sql.autoBroadcastJoinThreshold': '-1',
        'spark.sql.shuffle.partitions': '50',
      },
    });
  }, T);

  afterAll(stopRuns);

  it("the lost executor's copies deleted: exactly its outputs are recomputed, the readers keep theirs, the job is correct", async () => {
    const { driver } = run;
    await driver.ok({ ...SHUFFLE, name: 'deleted' });
    expect(await driver.ok({ cmd: 'action', name: 'deleted' })).toMatchObject({ correct: true, mapPartitionsComputed: MAPS });
    const before = await driver.counts();
    await persisted(run, before.mapOutputs.length);
    const shuffle = Number((await driver.ok({ cmd: 'shuffleId', name: 'deleted' })).shuffleId);
    const outputs = currentOutputs(before, shuffle);
    expect(outputs).toHaveLength(MAPS);
    const [victim, held] = busiestOf(outputs);

    await killAndRepoint(driver, victim, before);
    await deleteCopies(run, held);
    const unregistered = (await pluginCounters(driver))('outputsUnregisteredAfterFailedRead');

    const second = await driver.ok({ cmd: 'action', name: 'deleted' });
    expect(second).toMatchObject({ correct: true, mapPartitionsComputed: MAPS + held.length });
    const after = await driver.counts();
    // Exactly the lost executor's outputs ran again; the executors that read them (and failed)
    // kept their own outputs, and none of them was taken for lost.
    expect(labels(computed(after, before))).toEqual(labels(held));
    expect(after.removedExecutors).toEqual([...before.removedExecutors, victim]);
    // The plugin unregistered exactly the outputs whose copies were gone (on a failed read, or
    // when it re-checked the other copies after one).
    expect((await pluginCounters(driver))('outputsUnregisteredAfterFailedRead') - unregistered).toBe(held.length);

    // The broken copies are no longer registered: the same action again reads what was recomputed.
    expect(await driver.ok({ cmd: 'action', name: 'deleted' })).toMatchObject({ correct: true, mapPartitionsComputed: MAPS + held.length });
    const again = await driver.counts();
    expect(computed(again, after)).toEqual([]);
    expect(again.failedStages).toBe(after.failedStages);
  }, T);

  it('AQE coalesced (batch) reads of a multi-stage SQL plan: the copies are read, one deleted copy costs exactly its output', async () => {
    const { driver } = run;
    const start = await driver.counts();
    await driver.ok({ cmd: 'defineSql', name: 'q', kind: 'join', rows: 40_000, maps: MAPS, keys: 97, pad: 64 });
    const first = await driver.ok({ cmd: 'actionSql', name: 'q' });
    expect(first.correct).toBe(true);
    // AQE coalesced the 50 shuffle partitions: reducers read ranges of partitions (batch reads).
    expect(String(first.plan)).toMatch(/AQEShuffleRead coalesced/);
    const before = await driver.counts();
    await persisted(run, before.mapOutputs.length);

    // Three shuffles: the two join inputs and the aggregation the join stage writes.
    const made = computed(before, start);
    const shuffles = [...new Set(made.map((o) => o.shuffle))].sort((a, b) => a - b);
    expect(shuffles).toHaveLength(3);
    const last = shuffles[2] as number;
    // The executor that wrote an output of the last shuffle: reading that output again needs its
    // copy, and recomputing it runs the join stage again, which reads both inputs, the lost
    // executor's through their copies, in coalesced ranges.
    const target = currentOutputs(before, last)[0] as MapOutput;
    const victim = target.executor;

    await killAndRepoint(driver, victim, before);
    await deleteCopies(run, [target]);
    const read = await pluginCounters(driver);

    expect(await driver.ok({ cmd: 'actionSql', name: 'q' })).toMatchObject({ correct: true });
    const after = await driver.counts();
    // The read path read the lost executor's other copies (the join stage's inputs, again).
    const now = await countersWhen(driver, (c) => c('fallbackBlocksRead') > read('fallbackBlocksRead'));
    expect(now('outputsUnregisteredAfterFailedRead') - read('outputsUnregisteredAfterFailedRead')).toBe(1);
    expect(labels(computed(after, before))).toEqual(labels([target]));
    expect(after.removedExecutors).toEqual([...before.removedExecutors, victim]);
  }, T);
});
