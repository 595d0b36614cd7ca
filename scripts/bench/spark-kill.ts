/**
 * `npm run bench:spark-kill`: what a SIGKILLed executor costs the next action, on stock Spark and
 * with the agent + plugin, side by side in one run.
 *
 * Each run is a fresh pyspark driver in local-cluster mode (2 executor JVMs, 1 core each) with a
 * deterministic job whose shuffle is incompressible (pseudo-random padding seeded by partition).
 * The first action computes the shuffle; on the plugin side the built agent CLI copies the
 * executors' committed outputs to a file:// fallback store and the run waits until it reports all
 * of them persisted. Then the executor holding most map outputs is SIGKILLed (its local dirs
 * deleted, as with a deleted pod) and, once the driver saw it removed (and, with the plugin, its recovery finished), the same action runs again. The
 * sides alternate within each round, and which goes first alternates between rounds.
 *
 * Measured per run, for the action after the kill: its wall time (the driver's, around collect()),
 * map tasks re-run (ShuffleMapTask ends from the TaskCounter listener, and the map function's
 * accumulator), bytes read from the store (sizes of the stored data objects whose access time
 * moved during the action: the store is ext4 with relatime, so the first read after the write
 * moves it; index reads are not seen this way, as the plugin's verification read them first),
 * Spark's shuffle-read bytes (local includes fallback reads), and CPU seconds of the driver's
 * process tree (driver JVM, executor JVMs, Python workers) during the action.
 *
 * Usage: node dist/scripts/bench/spark-kill.js [--rounds 3] [--spark 3.5.8[,4.1.1]]
 *          [--maps 24] [--rows 48000] [--pad 1000] [--reducers 8]
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AGENT_CLI as CLI, PLUGIN_JAR, pluginConf, sparkLine, SparkDriver, startAgentCli as startAgent, waitPersisted, type SparkLine, type TaskCounts } from '../../test/kit/spark-harness.js';
import { procStats, treeCpuSeconds } from './proc-stats.js';
import { flag } from './args.js';
import { median } from './stats.js';

const ROUNDS = Number(flag('rounds', '3'));
const MAPS = Number(flag('maps', '24'));
const ROWS = Number(flag('rows', '48000'));
const PAD = Number(flag('pad', '1000'));
const REDUCERS = Number(flag('reducers', '8'));
const LINES = flag('spark', '3.5.8')
  .split(',')
  .map(sparkLine);
const here = dirname(fileURLToPath(import.meta.url));
// dist/scripts/bench -> repository root
const root = resolve(here, '..', '..', '..');
const MiB = 1024 * 1024;
const JOB = { cmd: 'define', name: 'a', rows: ROWS, maps: MAPS, reducers: REDUCERS, keys: 997, pad: PAD, random: true };

type Side = 'stock' | 'plugin';

interface RunResult {
  spark: string;
  side: Side;
  round: number;
  /** Map outputs the killed executor held. */
  held: number;
  /** Bytes of the shuffle's data files in the executors' local dirs after the first action. */
  shuffleBytes: number;
  /** Wall seconds of the first action (map and reduce stages): what the map stage is up against. */
  firstActionSeconds: number;
  /** Wall seconds of the action after the kill (the driver's, around collect()). */
  actionSeconds: number;
  /** Seconds from SIGKILL to the action's answer (removal seen, recovery, action). */
  killToResultSeconds: number;
  mapTasksRerun: number;
  mapPartitionsRecomputed: number;
  fetchFailures: number;
  failedStages: number;
  storeDataObjectsRead: number;
  storeBytesRead: number;
  shuffleLocalBytesRead: number;
  shuffleRemoteBytesRead: number;
  cpuSeconds: number;
  agentCpuSeconds?: number;
  repointed?: number;
  recomputed?: number;
  verificationMs?: number;
  loadBefore: number;
}

/** Shuffle data files (local dir) or objects (store) below `dir`: path -> access time and size. */
async function dataFiles(dir: string): Promise<Map<string, { atimeMs: number; size: number }>> {
  const out = new Map<string, { atimeMs: number; size: number }>();
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (/^shuffle_\d+_\d+_0\.data$/.test(e.name)) {
        const s = await stat(p);
        out.set(p, { atimeMs: s.atimeMs, size: s.size });
      }
    }
  };
  if (existsSync(dir)) await walk(dir);
  return out;
}

async function runSide(line: SparkLine, side: Side, round: number): Promise<RunResult> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-spark-kill-'));
  const local = join(dir, 'local');
  const store = join(dir, 'fallback');
  await mkdir(local);
  await mkdir(store);
  const driver = await SparkDriver.start(line, { localDir: local, conf: side === 'plugin' ? pluginConf(`file://${store}/`) : {} });
  let agent: { child: ChildProcess; url: string } | undefined;
  try {
    if (side === 'plugin') agent = await startAgent(local, store, driver.appId);
    await driver.ok(JOB);
    const first = await driver.ok({ cmd: 'action', name: 'a' });
    if (first.correct !== true) throw new Error(`first action wrong: ${JSON.stringify(first)}`);
    if (agent) await waitPersisted(agent.url, MAPS);
    const appStore = join(store, driver.appId);
    const shuffleBytes = [...(await dataFiles(local)).values()].reduce((a, f) => a + f.size, 0);
    const before = await driver.counts();
    const [victim, held] = Object.entries(before.mapTasksByExecutor).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))[0] as [string, number];

    const loadBefore = loadavg()[0] as number;
    const tKill = performance.now();
    await driver.killExecutor(victim);
    let plugin: Record<string, unknown> | undefined;
    if (side === 'plugin') plugin = await driver.waitForPlugin((m) => Number(m.executorsRecovered) >= 1);
    const stored = await dataFiles(appStore);
    const counts0: TaskCounts = await driver.counts();
    const cpu0 = treeCpuSeconds(driver.pid);
    const agentCpu0 = agent ? procStats(agent.child.pid as number)?.cpuSeconds : undefined;
    const second = await driver.ok({ cmd: 'action', name: 'a' });
    const killToResult = (performance.now() - tKill) / 1000;
    const cpu1 = treeCpuSeconds(driver.pid);
    const agentCpu1 = agent ? procStats(agent.child.pid as number)?.cpuSeconds : undefined;
    if (second.correct !== true) throw new Error(`action after the kill wrong: ${JSON.stringify(second)}`);
    const counts1 = await driver.counts();
    const after = await dataFiles(appStore);
    let objectsRead = 0;
    let bytesRead = 0;
    for (const [p, s] of after) {
      if (s.atimeMs > (stored.get(p)?.atimeMs ?? Infinity)) {
        objectsRead++;
        bytesRead += s.size;
      }
    }
    const timer = plugin?.verificationTime as { max?: number } | undefined;
    return {
      spark: line.version,
      side,
      round,
      held,
      shuffleBytes,
      firstActionSeconds: Number(first.wall),
      actionSeconds: Number(second.wall),
      killToResultSeconds: killToResult,
      mapTasksRerun: counts1.mapTasks - counts0.mapTasks,
      mapPartitionsRecomputed: Number(second.mapPartitionsComputed) - Number(first.mapPartitionsComputed),
      fetchFailures: counts1.fetchFailures - counts0.fetchFailures,
      failedStages: counts1.failedStages - counts0.failedStages,
      storeDataObjectsRead: objectsRead,
      storeBytesRead: bytesRead,
      shuffleLocalBytesRead: counts1.shuffleLocalBytesRead - counts0.shuffleLocalBytesRead,
      shuffleRemoteBytesRead: counts1.shuffleRemoteBytesRead - counts0.shuffleRemoteBytesRead,
      cpuSeconds: cpu1 - cpu0,
      ...(agentCpu0 !== undefined && agentCpu1 !== undefined ? { agentCpuSeconds: agentCpu1 - agentCpu0 } : {}),
      ...(plugin ? { repointed: Number(plugin.outputsRepointed), recomputed: Number(plugin.outputsRecomputed), verificationMs: Number(timer?.max) } : {}),
      loadBefore,
    };
  } finally {
    await driver.stop().catch(() => undefined);
    agent?.child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
}

function summary(rs: RunResult[], f: (r: RunResult) => number, digits = 2): string {
  const xs = rs.map(f);
  return `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;
}

async function main(): Promise<void> {
  if (!existsSync(CLI) || !existsSync(PLUGIN_JAR)) throw new Error('build first: npm run build (needs Maven for the plugin jar)');
  console.log(`${ROUNDS} rounds; job: ${ROWS} rows in ${MAPS} map partitions, ${PAD} B incompressible padding per row, ${REDUCERS} reducers; local-cluster[2,1,768]`);
  const results: RunResult[] = [];
  for (const line of LINES) {
    for (let round = 1; round <= ROUNDS; round++) {
      const order: Side[] = round % 2 ? ['stock', 'plugin'] : ['plugin', 'stock'];
      for (const side of order) {
        const r = await runSide(line, side, round);
        results.push(r);
        console.log(`spark ${r.spark} round ${round} ${side}: first action ${r.firstActionSeconds.toFixed(2)} s, action after the kill ${r.actionSeconds.toFixed(2)} s (kill->result ${r.killToResultSeconds.toFixed(2)} s), `
          + `shuffle ${(r.shuffleBytes / MiB).toFixed(1)} MiB, killed executor held ${r.held}/${MAPS} outputs, map tasks re-run ${r.mapTasksRerun} (accumulator ${r.mapPartitionsRecomputed}), `
          + `store: ${r.storeDataObjectsRead} data objects / ${(r.storeBytesRead / MiB).toFixed(1)} MiB read, `
          + `shuffle read local ${(r.shuffleLocalBytesRead / MiB).toFixed(1)} MiB remote ${(r.shuffleRemoteBytesRead / MiB).toFixed(1)} MiB, `
          + `CPU ${r.cpuSeconds.toFixed(1)} s${r.agentCpuSeconds !== undefined ? ` (+ agent ${r.agentCpuSeconds.toFixed(2)} s)` : ''}, `
          + `fetch failures ${r.fetchFailures}, failed stages ${r.failedStages}`
          + `${r.side === 'plugin' ? `, re-pointed ${r.repointed} recomputed ${r.recomputed}, verification ${r.verificationMs?.toFixed(0)} ms` : ''}, load ${r.loadBefore.toFixed(1)}`);
      }
    }
  }
  for (const line of LINES) {
    const of = (side: Side): RunResult[] => results.filter((r) => r.spark === line.version && r.side === side);
    const stock = of('stock');
    const plugin = of('plugin');
    console.log(`\n## Spark ${line.version}: median (min–max) over ${ROUNDS} rounds`);
    console.log('| | stock Spark | agent + plugin |');
    console.log('| --- | --- | --- |');
    const row = (name: string, f: (r: RunResult) => number, digits?: number): void => console.log(`| ${name} | ${summary(stock, f, digits)} | ${summary(plugin, f, digits)} |`);
    row('first action (all map tasks + reducers), s', (r) => r.firstActionSeconds);
    row('action after the kill, s', (r) => r.actionSeconds);
    row('SIGKILL -> result, s', (r) => r.killToResultSeconds);
    row('outputs on the killed executor', (r) => r.held, 0);
    row('map tasks re-run (listener)', (r) => r.mapTasksRerun, 0);
    row('map partitions recomputed (accumulator)', (r) => r.mapPartitionsRecomputed, 0);
    row('data objects read from the store', (r) => r.storeDataObjectsRead, 0);
    row('MiB read from the store (data objects)', (r) => r.storeBytesRead / MiB, 1);
    row('shuffle read, local MiB (Spark metrics)', (r) => r.shuffleLocalBytesRead / MiB, 1);
    row('shuffle read, remote MiB (Spark metrics)', (r) => r.shuffleRemoteBytesRead / MiB, 1);
    row('CPU s, driver + executors + Python workers', (r) => r.cpuSeconds, 1);
    row('fetch failures / failed stages', (r) => r.fetchFailures + r.failedStages, 0);
    const ratio = (f: (r: RunResult) => number): string => (median(stock.map(f)) / median(plugin.map(f))).toFixed(2);
    console.log(`\nratio stock / plugin (medians): action wall ${ratio((r) => r.actionSeconds)}x, SIGKILL -> result ${ratio((r) => r.killToResultSeconds)}x, CPU ${ratio((r) => r.cpuSeconds)}x`);
    console.log(`plugin: verification (plugin timer, max) median ${median(plugin.map((r) => r.verificationMs ?? NaN)).toFixed(0)} ms; agent CPU during the action median ${median(plugin.map((r) => r.agentCpuSeconds ?? NaN)).toFixed(2)} s`);
  }
  const out = join(root, 'bench', 'out');
  await mkdir(out, { recursive: true });
  const file = `spark-kill-results-${LINES.map((l) => l.version).join('-')}.json`;
  await writeFile(join(out, file), JSON.stringify(results, null, 2));
  console.log(`\nraw results: bench/out/${file}; load average at the end ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
}

await main();
