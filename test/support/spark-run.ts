/**
 * One real-Spark test run: a pyspark driver in local-cluster mode (with or without the plugin)
 * and the built agent on its executors' local dirs, writing to a file:// fallback store in the
 * run's temp dir. Shared by the real-Spark e2e tests.
 */
import { mkdir, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentProcess } from '../kit/agent-process.js';
import { until } from '../kit/wait.js';
import { pluginConf, sparkAgentArgs, SparkDriver, type SparkLine } from '../kit/spark-harness.js';
import { tempDir } from '../kit/temp-dir.js';

export interface Run {
  dir: string;
  driver: SparkDriver;
  agent?: AgentProcess;
  cleanup: () => Promise<void>;
}

const runs: Run[] = [];

/** Stop every run started since the last call (an afterEach hook). */
export async function stopRuns(): Promise<void> {
  for (const r of runs.splice(0)) {
    await r.driver.stop().catch(() => undefined);
    await r.agent?.stop('SIGKILL').catch(() => undefined);
    await r.cleanup();
  }
}

/** A driver (with or without the plugin) and an agent on its executors' local dirs. */
export async function startRun(line: SparkLine, opts: { plugin: boolean; agent?: boolean; conf?: Record<string, string>; javaHome?: string }): Promise<Run> {
  const t = await tempDir('ssa-spark-');
  const local = join(t.path, 'local');
  const store = join(t.path, 'fallback');
  await mkdir(local);
  await mkdir(store);
  const driver = await SparkDriver.start(line, {
    localDir: local,
    ...(opts.javaHome !== undefined ? { javaHome: opts.javaHome } : {}),
    conf: { ...(opts.plugin ? pluginConf(`file://${store}/`) : {}), ...opts.conf },
  });
  const run: Run = { dir: t.path, driver, cleanup: t.cleanup };
  runs.push(run);
  if (opts.agent !== false) {
    run.agent = await AgentProcess.start(sparkAgentArgs(local, store, driver.appId));
  }
  return run;
}

/** The markers under an app prefix that are no shuffle file: the plugin's heartbeat (and the .crc
 * Hadoop's local FS writes beside it) and the agent's owner marker. */
export function isAppMarker(name: string): boolean {
  return name === '_heartbeat' || name === '._heartbeat.crc' || name === '_owner';
}

/** Files below `dirs` (recursively; absent dirs are empty) whose name `keep` accepts: name -> path. */
export async function filesUnder(dirs: string[], keep: (name: string) => boolean): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(join(d, e.name));
      else if (keep(e.name)) out.set(e.name, join(d, e.name));
    }
  };
  for (const d of dirs) {
    await walk(d).catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    });
  }
  return out;
}

/** Every object under the store's app prefix but the markers (heartbeat, owner), by file name. */
export function storedFiles(run: Run): Promise<Map<string, string>> {
  return filesUnder([join(run.dir, 'fallback', run.driver.appId)], (n) => !isAppMarker(n));
}

/** The shuffle most real-Spark tests run: 8 map partitions, deterministic rows. */
export const MAPS = 8;
export const SHUFFLE = { cmd: 'define', name: 'a', rows: 40_000, maps: MAPS, reducers: 4, keys: 97, pad: 64 };
/** A real-Spark test's time limit (two JVM clusters may share the 2 cores). */
export const SPARK_TEST_TIMEOUT = 300_000;

/**
 * Define `shuffle`, run its first action (which must be correct and compute every map
 * partition once), and wait until the agent stored all of them.
 */
export async function computeAndStore(run: Run, shuffle: Record<string, unknown> = SHUFFLE): Promise<void> {
  const maps = Number(shuffle.maps);
  await run.driver.ok(shuffle);
  const first = await run.driver.ok({ cmd: 'action', name: shuffle.name });
  if (first.correct !== true || Number(first.mapPartitionsComputed) !== maps) {
    throw new Error(`first action of ${String(shuffle.name)}: ${JSON.stringify(first)}`);
  }
  await persisted(run, maps);
}

/** Wait until the agent reports `n` outputs persisted and none pending. */
export async function persisted(run: Run, n: number): Promise<void> {
  await run.agent!.waitForStatus((s) => Number(s.persistedOutputs) >= n && Number(s.pendingOutputs) === 0, 60_000);
}

/** Every shuffle file under some local dirs, by name. */
export function localShuffleFiles(dirs: string[]): Promise<Map<string, string>> {
  return filesUnder(dirs, (n) => /^shuffle_\d+_\d+_0\.(index|data)$/.test(n));
}

/** The executor that ran the most map tasks, and how many. */
export function busiest(byExecutor: Record<string, number>): [string, number] {
  return Object.entries(byExecutor).sort((a, b) => b[1] - a[1])[0] as [string, number];
}

/** Resolves when `path` exists (a reduce task created it). */
export async function waitForFile(path: string, timeoutMs = 120_000): Promise<void> {
  await until(() => stat(path).then(() => true, () => false), `${path} to appear`, timeoutMs, 20);
}
