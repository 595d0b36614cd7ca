/**
 * `npm run bench:spark-elastic`: what elastic executors cost, stock Spark against agent + plugin,
 * side by side in one run (real Spark, local-cluster, 2 executor JVMs of 1 core).
 *
 * - dynamic allocation: a job computes a shuffle, the driver then works alone for `--pause`
 *   seconds (executors idle), and a second action reads the shuffle again. Stock runs the way
 *   Kubernetes must without a shuffle service: shuffle tracking on, so executors that hold
 *   shuffle data are never released. With the plugin, tracking is off and idle executors go after
 *   `executorIdleTimeout`; new ones come for the second action and read the copies. Measured:
 *   executor-seconds (executor JVMs alive, sampled every 100 ms from /proc), wall time, map tasks
 *   re-run.
 * - decommissioning: the executor holding most outputs gets SIGPWR (what decom.sh sends).
 *   Stock migrates its shuffle files (`shuffleBlocks.enabled`, to the peer executor or the
 *   fallback path); with the plugin Spark copies nothing (the agent has the copies). Measured:
 *   time from the signal to the JVM's exit, map tasks re-run by the next action.
 *
 * Usage: node dist/scripts/bench/spark-elastic.js [--rounds 2] [--spark 3.5.8] [--pause 20]
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pluginConf, sparkLine, SparkDriver, startAgentCli, waitForExit, waitPersisted, type SparkLine } from '../../test/kit/spark-harness.js';
import { flag } from './args.js';
import { median } from './stats.js';

const ROUNDS = Number(flag('rounds', '2'));
const PAUSE_S = Number(flag('pause', '20'));
const LINE = sparkLine(flag('spark', '3.5.8'));
const MAPS = 24;
const JOB = { cmd: 'define', name: 'a', rows: 48_000, maps: MAPS, reducers: 8, keys: 997, pad: 1000, random: true };
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

type Side = 'stock' | 'plugin';

interface DaResult {
  side: Side;
  wallSeconds: number;
  executorSeconds: number;
  mapTasksRerun: number;
  correct: boolean;
}

interface DecomResult {
  side: Side;
  signalToExitSeconds: number;
  held: number;
  mapTasksRerun: number;
  correct: boolean;
}

/** Sums the seconds each of the app's executor JVMs is alive, sampled every 100 ms. */
function executorSampler(driver: SparkDriver): { stop: () => number } {
  let seconds = 0;
  let last = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    seconds += (driver.executorPids().size * (now - last)) / 1000;
    last = now;
  }, 100);
  return {
    stop: () => {
      clearInterval(timer);
      return seconds;
    },
  };
}

async function withRun<T>(line: SparkLine, side: Side, conf: Record<string, string>, body: (driver: SparkDriver, agentUrl?: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-spark-elastic-'));
  const local = join(dir, 'local');
  const store = join(dir, 'fallback');
  await mkdir(local);
  await mkdir(store);
  const driver = await SparkDriver.start(line, { localDir: local, conf: { ...(side === 'plugin' ? pluginConf(`file://${store}/`) : {}), ...conf } });
  let agent: Awaited<ReturnType<typeof startAgentCli>> | undefined;
  try {
    if (side === 'plugin') agent = await startAgentCli(local, store, driver.appId);
    return await body(driver, agent?.url);
  } finally {
    await driver.stop().catch(() => undefined);
    agent?.child.kill('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  }
}

async function dynamicAllocation(line: SparkLine, side: Side): Promise<DaResult> {
  const conf: Record<string, string> = {
    'spark.dynamicAllocation.enabled': 'true',
    'spark.dynamicAllocation.minExecutors': '0',
    'spark.dynamicAllocation.initialExecutors': '2',
    'spark.dynamicAllocation.maxExecutors': '2',
    'spark.dynamicAllocation.executorIdleTimeout': '3s',
    'spark.dynamicAllocation.shuffleTracking.enabled': side === 'stock' ? 'true' : 'false',
  };
  return withRun(line, side, conf, async (driver, agentUrl) => {
    const sampler = executorSampler(driver);
    const t0 = performance.now();
    await driver.ok(JOB);
    await driver.ok({ cmd: 'action', name: 'a' });
    const before = await driver.counts();
    if (agentUrl) await waitPersisted(agentUrl, MAPS);
    // The driver works alone (a driver-side computation, a slow upstream): executors are idle.
    await new Promise((r) => setTimeout(r, PAUSE_S * 1000));
    const second = await driver.ok({ cmd: 'action', name: 'a' });
    const wallSeconds = (performance.now() - t0) / 1000;
    const executorSeconds = sampler.stop();
    const after = await driver.counts();
    return { side, wallSeconds, executorSeconds, mapTasksRerun: after.mapTasks - before.mapTasks, correct: second.correct === true };
  });
}

async function decommission(line: SparkLine, side: Side): Promise<DecomResult> {
  const conf: Record<string, string> = {
    'spark.decommission.enabled': 'true',
    'spark.storage.decommission.enabled': 'true',
    'spark.storage.decommission.rddBlocks.enabled': 'false',
    'spark.storage.decommission.shuffleBlocks.enabled': side === 'stock' ? 'true' : 'false',
  };
  return withRun(line, side, conf, async (driver, agentUrl) => {
    await driver.ok(JOB);
    await driver.ok({ cmd: 'action', name: 'a' });
    if (agentUrl) await waitPersisted(agentUrl, MAPS);
    const before = await driver.counts();
    const [victim, held] = Object.entries(before.mapTasksByExecutor).sort((a, b) => b[1] - a[1])[0] as [string, number];
    const pid = driver.executorPids().get(victim) as number;
    const t0 = performance.now();
    process.kill(pid, 'SIGPWR');
    await waitForExit(pid, 300_000);
    const signalToExitSeconds = (performance.now() - t0) / 1000;
    await driver.waitForCounts((c) => c.removedExecutors.includes(victim), 120_000);
    if (side === 'plugin') await driver.waitForPlugin((m) => Number(m.executorsRecovered) >= 1);
    const second = await driver.ok({ cmd: 'action', name: 'a' });
    const after = await driver.counts();
    return { side, signalToExitSeconds, held, mapTasksRerun: after.mapTasks - before.mapTasks, correct: second.correct === true };
  });
}

function cell(xs: number[], digits = 1): string {
  return `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;
}

async function main(): Promise<void> {
  const line = LINE;
  console.log(`Spark ${line.version}, ${ROUNDS} rounds, sides alternating; ${MAPS} map partitions, ~46 MiB incompressible shuffle; idle pause ${PAUSE_S} s; load ${loadavg()[0]?.toFixed(1)}`);
  const da: DaResult[] = [];
  const decom: DecomResult[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const order: Side[] = round % 2 ? ['stock', 'plugin'] : ['plugin', 'stock'];
    for (const side of order) {
      const r = await dynamicAllocation(line, side);
      da.push(r);
      console.log(`round ${round} dynamic allocation ${side}: wall ${r.wallSeconds.toFixed(1)} s, executor-seconds ${r.executorSeconds.toFixed(1)}, map tasks re-run ${r.mapTasksRerun}, correct ${r.correct}, load ${loadavg()[0]?.toFixed(1)}`);
    }
    for (const side of order) {
      const r = await decommission(line, side);
      decom.push(r);
      console.log(`round ${round} decommission ${side}: signal -> exit ${r.signalToExitSeconds.toFixed(1)} s, held ${r.held} outputs, map tasks re-run ${r.mapTasksRerun}, correct ${r.correct}, load ${loadavg()[0]?.toFixed(1)}`);
    }
  }
  const of = <T extends { side: Side }>(rs: T[], side: Side): T[] => rs.filter((r) => r.side === side);
  console.log(`\n## Spark ${line.version}: median (min–max) over ${ROUNDS} rounds`);
  console.log('| | stock Spark | agent + plugin | stock / plugin |');
  console.log('| --- | --- | --- | --- |');
  const row = <T extends { side: Side }>(name: string, rs: T[], f: (r: T) => number, digits = 1): void => {
    const s = of(rs, 'stock').map(f);
    const p = of(rs, 'plugin').map(f);
    console.log(`| ${name} | ${cell(s, digits)} | ${cell(p, digits)} | ${median(p) > 0 ? (median(s) / median(p)).toFixed(2) : '–'} |`);
  };
  row('dynamic allocation: executor-seconds', da, (r) => r.executorSeconds);
  row('dynamic allocation: wall time, s', da, (r) => r.wallSeconds);
  row('dynamic allocation: map tasks re-run', da, (r) => r.mapTasksRerun, 0);
  row('decommission: signal -> executor exit, s', decom, (r) => r.signalToExitSeconds);
  row('decommission: map tasks re-run after', decom, (r) => r.mapTasksRerun, 0);
  if (![...da, ...decom].every((r) => r.correct)) throw new Error('a result was wrong');
  const out = join(root, 'bench', 'out');
  await mkdir(out, { recursive: true });
  await writeFile(join(out, `spark-elastic-${line.version}.json`), JSON.stringify({ da, decom }, null, 2));
  console.log(`\nraw results: bench/out/spark-elastic-${line.version}.json; load average at the end ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
}

await main();
