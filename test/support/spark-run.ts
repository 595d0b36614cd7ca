/**
 * One real-Spark test run: a pyspark driver in local-cluster mode (with or without the plugin)
 * and the built agent on its executors' local dirs, writing to a file:// fallback store in the
 * run's temp dir. Shared by the real-Spark e2e tests.
 */
import { mkdir, open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentProcess } from './agent-process.js';
import { pluginConf, SparkDriver, type SparkLine } from './spark.js';
import { tempDir } from './temp-dir.js';

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
export async function startRun(line: SparkLine, opts: { plugin: boolean; agent?: boolean; conf?: Record<string, string> }): Promise<Run> {
  const t = await tempDir('ssa-spark-');
  const local = join(t.path, 'local');
  const store = join(t.path, 'fallback');
  await mkdir(local);
  await mkdir(store);
  const driver = await SparkDriver.start(line, {
    localDir: local,
    conf: { ...(opts.plugin ? pluginConf(`file://${store}/`) : {}), ...opts.conf },
  });
  const run: Run = { dir: t.path, driver, cleanup: t.cleanup };
  runs.push(run);
  if (opts.agent !== false) {
    run.agent = await AgentProcess.start([
      '--local-dirs', local,
      '--local-dirs-layout', 'spark-*/executor-*',
      '--app-id', driver.appId,
      '--store', `file://${store}`,
      '--rescan-interval', '5',
    ]);
  }
  return run;
}

/** The plugin's heartbeat object (and the .crc Hadoop's local FS writes beside it). */
export function isHeartbeat(name: string): boolean {
  return name === '_heartbeat' || name === '._heartbeat.crc';
}

/** Every object under the store's app prefix but the plugin's heartbeat, by file name. */
export async function storedFiles(run: Run): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(join(d, e.name));
      else if (!isHeartbeat(e.name)) out.set(e.name, join(d, e.name));
    }
  };
  await walk(join(run.dir, 'fallback', run.driver.appId)).catch(() => undefined);
  return out;
}

/** Wait until the agent reports `n` outputs persisted and none pending. */
export async function persisted(run: Run, n: number): Promise<void> {
  await run.agent!.waitForStatus((s) => Number(s.persistedOutputs) >= n && Number(s.pendingOutputs) === 0, 60_000);
}

/** Every shuffle file under some local dirs, by name. */
export async function localShuffleFiles(dirs: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      if (e.isDirectory()) await walk(join(d, e.name));
      else if (/^shuffle_\d+_\d+_0\.(index|data)$/.test(e.name)) out.set(e.name, join(d, e.name));
    }
  };
  for (const d of dirs) await walk(d);
  return out;
}

/** The executor that ran the most map tasks, and how many. */
export function busiest(byExecutor: Record<string, number>): [string, number] {
  return Object.entries(byExecutor).sort((a, b) => b[1] - a[1])[0] as [string, number];
}

/** Resolves when `path` exists (a reduce task created it). */
export async function waitForFile(path: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await stat(path);
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`${path} never appeared`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

export async function readAll(path: string): Promise<Buffer> {
  const size = (await stat(path)).size;
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.alloc(size);
    await fh.read(buf, 0, size, 0);
    return buf;
  } finally {
    await fh.close();
  }
}
