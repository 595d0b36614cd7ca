/**
 * What the real-Spark read tests need beyond spark-run.ts: WHICH map outputs ran where and which
 * ran again (from the TaskCounter listener's list of successful map tasks), and the plugin's
 * counters. `pluginConf()` turns the plugin's read path on (`spark.shuffle.manager`).
 */
import type { Answer, SparkDriver, TaskCounts } from '../kit/spark-harness.js';

/** One computed map output: which shuffle and map partition, on which executor, under which map id. */
export interface MapOutput {
  shuffle: number;
  partition: number;
  executor: string;
  /** The map task's id: it names the output's files, `shuffle_<shuffle>_<mapId>_0.*`. */
  mapId: number;
}

/** Map outputs computed after `since` (or from the app's start), in order. */
export function computed(now: TaskCounts, since?: TaskCounts): MapOutput[] {
  return now.mapOutputs.slice(since?.mapOutputs.length ?? 0).map(([shuffle, partition, executor, mapId]) => ({ shuffle, partition, executor, mapId }));
}

/** The registered output of each map partition of `shuffle`: the latest computation wins. */
export function currentOutputs(now: TaskCounts, shuffle: number): MapOutput[] {
  const byPartition = new Map<number, MapOutput>();
  for (const o of computed(now)) if (o.shuffle === shuffle) byPartition.set(o.partition, o);
  return [...byPartition.values()].sort((a, b) => a.partition - b.partition);
}

/** Every output registered on `executor` now, of every shuffle: what its loss re-points. */
export function registeredOn(now: TaskCounts, executor: string): MapOutput[] {
  const shuffles = new Set(now.mapOutputs.map(([s]) => s));
  return [...shuffles].flatMap((s) => currentOutputs(now, s)).filter((o) => o.executor === executor);
}

/** Sorted `"shuffle/partition"` labels, to compare sets of outputs with readable failures. */
export function labels(outputs: MapOutput[]): string[] {
  return outputs.map((o) => `${o.shuffle}/${o.partition}`).sort();
}

/** The executor holding the most of `outputs`, and those outputs. */
export function busiestOf(outputs: MapOutput[]): [string, MapOutput[]] {
  const by = new Map<string, MapOutput[]>();
  for (const o of outputs) by.set(o.executor, [...(by.get(o.executor) ?? []), o]);
  const [executor, held] = [...by.entries()].sort((a, b) => b[1].length - a[1].length)[0] as [string, MapOutput[]];
  return [executor, held];
}

/** The file names an output's copy has in the store. */
export function copyNames(o: MapOutput): string[] {
  return [`shuffle_${o.shuffle}_${o.mapId}_0.index`, `shuffle_${o.shuffle}_${o.mapId}_0.data`];
}

/** The plugin's driver counters, as numbers (a counter not registered yet reads 0). */
export async function pluginCounters(driver: SparkDriver): Promise<(name: string) => number> {
  const m: Answer = await driver.pluginMetrics();
  return (name) => Number(m[name] ?? 0);
}

/**
 * The plugin's counters once `pred` holds for them: the read path's totals reach the driver in a
 * message each task sends as it ends, which may land after the action returned.
 */
export async function countersWhen(driver: SparkDriver, pred: (c: (name: string) => number) => boolean): Promise<(name: string) => number> {
  const m = await driver.waitForPlugin((x) => pred((name) => Number(x[name] ?? 0)));
  return (name) => Number(m[name] ?? 0);
}

/**
 * SIGKILL `victim` and wait until the plugin re-pointed every output registered on it in
 * `counts` (the test waited until the agent stored them all): exactly that many more.
 */
export async function killAndRepoint(driver: SparkDriver, victim: string, counts: TaskCounts): Promise<void> {
  const held = registeredOn(counts, victim).length;
  const repointed = (await pluginCounters(driver))('outputsRepointed');
  await driver.killExecutor(victim);
  const m = await driver.waitForPlugin((x) => Number(x.outputsRepointed) >= repointed + held);
  if (Number(m.outputsRepointed) !== repointed + held) {
    throw new Error(`the plugin re-pointed ${Number(m.outputsRepointed) - repointed} outputs of executor ${victim}, not ${held}`);
  }
}
