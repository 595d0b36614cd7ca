/**
 * Issue 16, point 3: a reducer whose share of fallback blocks is larger than its executor's
 * heap, in ONE block over 2 GiB, read from the store by the plugin's read path (real Spark,
 * local-cluster, the built agent copying to a file:// store). Spark's own FallbackStorage.read
 * holds each block in one byte[]: a block over 2 GiB fails (negative array size) and one near
 * the heap's size is an OutOfMemoryError that kills the executor.
 *
 * Size: one map task writes one reduce partition of 2.2 GB (2^31 bytes plus about 3 %), the
 * smallest that crosses 2 GiB with a margin, so it covers both cases in one shuffle: the block is
 * over 2 GiB and over four times the executors' 512 MiB heap. A file:// store keeps the copy and
 * the read at disk speed; the shuffle is written uncompressed so the bytes on disk are the
 * rows' (a repeated letter would compress to nothing).
 */
import { stat } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { computed, copyNames, countersWhen, currentOutputs, killAndRepoint, pluginCounters } from '../support/map-outputs.js';
import { SPARK_LINES } from '../kit/spark-harness.js';
import { persisted, startRun, stopRuns, storedFiles } from '../support/spark-run.js';

/** 2,150,000 rows of 1,000 bytes: about 1,028 bytes each as Spark's UnsafeRows on disk. */
const ROWS = 2_150_000;
const WIDTH = 1_000;
const EXECUTOR_HEAP = 512 * 1024 * 1024;

afterEach(stopRuns);

describe.each(SPARK_LINES)('Spark $version: one block over 2 GiB, and over the heap, read from the store', (line) => {
  it('is streamed: no OutOfMemoryError, no executor lost, no map task run again, the result is correct', async () => {
    const run = await startRun(line, { plugin: true, conf: { 'spark.shuffle.compress': 'false' } });
    const { driver } = run;
    await driver.ok({ cmd: 'defineSql', name: 'big', kind: 'big', rows: ROWS, width: WIDTH });
    expect(await driver.ok({ cmd: 'actionSql', name: 'big' }, 600_000)).toMatchObject({ correct: true });
    const before = await driver.counts();
    await persisted(run, before.mapOutputs.length);

    // The shuffle the big rows went through: one map output of one partition.
    const [shuffle] = [...new Set(computed(before).map((o) => o.shuffle))];
    const [output] = currentOutputs(before, shuffle as number);
    expect(currentOutputs(before, shuffle as number)).toHaveLength(1);
    const data = (await storedFiles(run)).get(copyNames(output!)[1] as string);
    expect(data).toBeDefined();
    const size = (await stat(data as string)).size;
    expect(size).toBeGreaterThan(2 ** 31);
    expect(size).toBeGreaterThan(4 * EXECUTOR_HEAP);

    const victim = output!.executor;
    await killAndRepoint(driver, victim, before);
    const read = await pluginCounters(driver);

    expect(await driver.ok({ cmd: 'actionSql', name: 'big' }, 600_000)).toMatchObject({ correct: true });
    const after = await driver.counts();
    expect(computed(after, before)).toEqual([]);
    expect(after.fetchFailures).toBe(before.fetchFailures);
    // No executor died of the read: only the one the test killed is gone.
    expect(after.removedExecutors).toEqual([...before.removedExecutors, victim]);
    // The plugin's read path read the whole block from the store, streaming it.
    const now = await countersWhen(driver, (c) => c('fallbackBytesRead') - read('fallbackBytesRead') >= size);
    expect(now('fallbackBytesRead') - read('fallbackBytesRead')).toBe(size);
    expect(now('fallbackBlocksStreamed') - read('fallbackBlocksStreamed')).toBe(1);
  }, 900_000);
});
