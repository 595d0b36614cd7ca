/**
 * `npm run bench:spark-read`: what reading a lost executor's copies from an S3 store costs the
 * next action, side by side in one run: the plugin's read path, Spark's stock fallback read, and
 * stock Spark recomputing.
 *
 * Real Spark (local-cluster, 3 executor JVMs of 1 core and 1 GiB) reads through S3A (the pinned
 * hadoop-aws) from an S3 server on loopback, through a latency proxy (Node, the project's
 * FaultProxy) that holds back every answer by `--latency` ms, as S3's first byte does. The job: a
 * shuffle of `--maps` map outputs × `--reducers` reduce partitions and about `--mb` MB of
 * incompressible rows, whose map side does real work (`--work` SHA-256 rounds per row). Each
 * Spark app runs the action once (all map tasks), then:
 *   (a) the same action again with no kill (every app measures it: the read path's cost while no
 *       executor is lost shows as (a) of each configuration),
 *   then SIGKILLs the executor holding most map outputs (its local dirs deleted, as a pod's) and
 *   runs the same action again, in one of three configurations. With `--replacement elsewhere`
 *   (the default) the app's executor target is lowered to 2 first, so the standalone master
 *   starts no replacement: on a cluster a lost node's replacement executor starts on another
 *   node, with its own cores, while here a cold JVM would share the survivors' 2 cores (its
 *   start-up and JIT, about 14 s of CPU, would be charged to the action). `--replacement here`
 *   measures that too.
 *   (b) agent + plugin + the read path (`spark.shuffle.manager=...AgentShuffleManager`),
 *   (c) agent + plugin without the manager (`spark.shuffleAgent.repoint.withStockRead=true`):
 *       Spark's stock `FallbackStorage.read`,
 *   (d) stock Spark without the plugin (the lost outputs are recomputed).
 * The agent writes the copies straight to the store (not through the proxy: the write is not what
 * is measured); Spark (the plugin's verification and every read) goes through the proxy, which
 * counts each request by method and object kind. Configurations alternate within a round and
 * their order rotates between rounds.
 *
 * Measured per action: wall time (the driver's, around collect()), map tasks re-run, fetch
 * failures, requests through the proxy (per fallback block read = outputs re-pointed × reduce
 * partitions), peak executor heap (Spark's executor metrics: the largest JVMHeapMemory peak of
 * the action's stages, polled every 100 ms) and CPU of the driver's process tree. Before the
 * Spark runs, each store's own ceiling: ranged GETs of one block's size at the read path's
 * concurrency, straight to the store and through the proxy at 0 ms.
 *
 * Usage: node dist/scripts/bench/spark-read.js [--stores swift[,seaweedfs]] [--latency 20,0]
 *          [--configs b,c,d] [--rounds 1] [--maps 100] [--reducers 300] [--mb 200] [--work 100]
 *          [--spark 3.5.8] [--ceiling-concurrency 32] [--ceiling-requests 3000]
 *          [--read-conf key=value,...] [--replacement elsewhere|here]
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FaultProxy } from '../../test/kit/fault-proxy.js';
import { AGENT_CLI, PLUGIN_JAR, pluginConf, s3aJars, SparkDriver, sparkLine, startAgentCli, waitPersisted, type SparkLine, type TaskCounts } from '../../test/kit/spark-harness.js';
import { flag } from './args.js';
import { jvmLogOption, gcMarks, gcPeaksSince } from './gc-log.js';
import { processCpu, sparkCpuByRole, type SparkCpu } from './proc-stats.js';
import { getCeiling, newBucket, startStore, STORE_KINDS, type BenchStore, type Ceiling, type StoreKind } from './s3-bench-stores.js';
import { median } from './stats.js';

const list = (name: string, fallback: string): string[] => flag(name, fallback).split(',').filter((s) => s !== '');
const ROUNDS = Number(flag('rounds', '1'));
const LATENCIES = list('latency', '20,0').map(Number);
const STORES = list('stores', 'swift').map((s) => {
  if (!(STORE_KINDS as readonly string[]).includes(s)) throw new Error(`unknown store ${s}; known: ${STORE_KINDS.join(', ')}`);
  return s as StoreKind;
});
type Config = 'b' | 'c' | 'd';
const CONFIGS = list('configs', 'b,c,d').map((c) => {
  if (c !== 'b' && c !== 'c' && c !== 'd') throw new Error(`unknown configuration ${c}; known: b (read path), c (stock fallback read), d (no plugin); (a) is measured in each`);
  return c as Config;
});
const MAPS = Number(flag('maps', '100'));
const REDUCERS = Number(flag('reducers', '300'));
const MB = Number(flag('mb', '200'));
const WORK = Number(flag('work', '100'));
const PAD = 1000;
const ROWS = Math.round((MB * 1e6) / PAD);
// More keys than reduce partitions: every block is non-empty, so each re-pointed output gives
// exactly REDUCERS fallback blocks (Python's partitionBy hashes an int key to itself).
const KEYS = Math.max(997, REDUCERS * 3 + 1);
const EXECUTORS = 3;
const REPLACEMENT = flag('replacement', 'elsewhere');
if (REPLACEMENT !== 'elsewhere' && REPLACEMENT !== 'here') throw new Error(`--replacement wants elsewhere or here, got ${REPLACEMENT}`);
const EXECUTOR_MB = 1024;
const CEILING_CONCURRENCY = Number(flag('ceiling-concurrency', '32'));
const CEILING_REQUESTS = Number(flag('ceiling-requests', '3000'));
const LINE: SparkLine = sparkLine(flag('spark', '3.5.8'));
/** Read-path settings for (b), e.g. `--read-conf spark.shuffleAgent.read.maxBytesInFlight=48m`. */
const READ_CONF = Object.fromEntries(
  list('read-conf', '').map((kv) => {
    const i = kv.indexOf('=');
    if (i <= 0) throw new Error(`--read-conf wants key=value, got ${kv}`);
    return [kv.slice(0, i), kv.slice(i + 1)];
  }),
);
const ACTION_TIMEOUT_MS = 3_600_000;
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const MiB = 1024 * 1024;
const JOB = { cmd: 'define', name: 'a', rows: ROWS, maps: MAPS, reducers: REDUCERS, keys: KEYS, pad: PAD, random: true, work: WORK };

const CONFIG_NAMES: Record<Config | 'a', string> = {
  a: '(a) no kill',
  b: '(b) read path',
  c: '(c) stock fallback read',
  d: '(d) no plugin, recompute',
};

/** What the proxy saw: requests by method and by object kind. */
type Requests = Record<string, number>;

function objectKind(url: string): string {
  const path = url.split('?')[0] as string;
  if (/\/shuffle_\d+_\d+_\d+\.index$/.test(path)) return 'index';
  if (/\/shuffle_\d+_\d+_\d+\.data$/.test(path)) return 'data';
  if (/\/_heartbeat$/.test(path)) return 'heartbeat';
  if (/^\/[^/]+\/?$/.test(path)) return 'bucket'; // listings, bucket HEADs
  return 'other';
}

interface ActionResult {
  wallSeconds: number;
  mapTasksRerun: number;
  /** Map partitions computed during the action (the map function's accumulator). */
  mapPartitionsRecomputed: number;
  fetchFailures: number;
  failedStages: number;
  /** "GET index" -> n, ... */
  requests: Requests;
  /** Largest JVMHeapMemory peak of the action's stages over the executors, MiB. */
  peakHeapMiB: number;
  /** Largest executor heap left after a collection during the action (GC logs), MiB: what tasks held. */
  liveHeapMiB: number;
  /** Classes the executor JVMs loaded during the action. */
  classesLoaded: number;
  cpuSeconds: number;
  /**
   * CPU s of the action by role (driver, exec:<id>, jit:<id>, py:<id>; see sparkCpuByRole): a
   * process that started during the action counts from 0; one that died (the killed executor)
   * is left out.
   */
  cpuByRole: SparkCpu;
  /** Summed over the action's tasks (Spark's task metrics): time waiting for shuffle blocks, and running. */
  fetchWaitSeconds: number;
  taskRunSeconds: number;
  /** Per executor: its tasks' summed run time, s (where the stage's time went). */
  runSecondsByExecutor: Record<string, number>;
}

interface AppResult {
  store: StoreKind;
  latencyMs: number;
  config: Config;
  round: number;
  shuffleBytes: number;
  firstActionSeconds: number;
  held: number;
  repointed: number;
  recomputedByPlugin: number;
  fallbackBlocks: number;
  recoverySeconds: number;
  noKill: ActionResult;
  afterKill: ActionResult;
  loadBefore: number;
}

function confFor(config: Config, store: BenchStore, proxy: string, bucket: string, gcDir: string): Record<string, string> {
  const s3a: Record<string, string> = {
    'fs.s3a.endpoint': proxy,
    'fs.s3a.path.style.access': 'true',
    'fs.s3a.connection.ssl.enabled': 'false',
    'fs.s3a.endpoint.region': 'us-east-1',
    'fs.s3a.access.key': store.credentials.accessKeyId,
    'fs.s3a.secret.key': store.credentials.secretAccessKey,
    'fs.s3a.aws.credentials.provider': 'org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider',
    ...store.s3a,
  };
  const conf: Record<string, string> = {
    ...Object.fromEntries(Object.entries(s3a).map(([k, v]) => [`spark.hadoop.${k}`, v])),
    // Executor metrics (JVMHeapMemory) polled every 100 ms, so each task's peak is seen; Spark's
    // default polls only at heartbeats (10 s).
    'spark.executor.metrics.pollingInterval': '100ms',
    'spark.executor.extraJavaOptions': jvmLogOption(gcDir),
  };
  if (config === 'd') return conf;
  const plugin = pluginConf(`s3a://${bucket}/fallback/`);
  if (config === 'b') return { ...conf, ...plugin, ...READ_CONF };
  // (c): the plugin without its read path; it re-points only when told that Spark's stock read is
  // wanted (which fails the job on a copy that cannot be read).
  const { 'spark.shuffle.manager': manager, ...stock } = plugin;
  if (manager === undefined) throw new Error('pluginConf() no longer sets spark.shuffle.manager: update (c)');
  return { ...conf, ...stock, 'spark.shuffleAgent.repoint.withStockRead': 'true' };
}

interface StageData {
  stageId: number;
  attemptId: number;
  peakExecutorMetrics?: { JVMHeapMemory?: number };
}

interface TaskData {
  executorId: string;
  taskMetrics?: { executorRunTime?: number; shuffleReadMetrics?: { fetchWaitTime?: number } };
}

/** Where the action's task time went: fetch wait and run time summed over its tasks (ms → s). */
async function taskTimes(driver: SparkDriver, mine: StageData[]): Promise<Pick<ActionResult, 'fetchWaitSeconds' | 'taskRunSeconds' | 'runSecondsByExecutor'>> {
  let wait = 0;
  let run = 0;
  const byExecutor: Record<string, number> = {};
  for (const st of mine) {
    const r = await fetch(`${driver.ui}/api/v1/applications/${driver.appId}/stages/${st.stageId}/${st.attemptId}/taskList?length=100000`);
    if (!r.ok) continue;
    for (const t of (await r.json()) as TaskData[]) {
      const ms = t.taskMetrics?.executorRunTime ?? 0;
      wait += t.taskMetrics?.shuffleReadMetrics?.fetchWaitTime ?? 0;
      run += ms;
      byExecutor[t.executorId] = (byExecutor[t.executorId] ?? 0) + ms / 1000;
    }
  }
  return { fetchWaitSeconds: wait / 1000, taskRunSeconds: run / 1000, runSecondsByExecutor: byExecutor };
}

async function stages(driver: SparkDriver): Promise<StageData[]> {
  const r = await fetch(`${driver.ui}/api/v1/applications/${driver.appId}/stages`);
  if (!r.ok) throw new Error(`GET stages from ${driver.ui}: HTTP ${r.status}`);
  return (await r.json()) as StageData[];
}

/**
 * Runs the action once with the proxy counting; the heap peak is the largest of the stages
 * Spark started for it (stage ids above `before`), read once the listener saw them end.
 */
async function measuredAction(driver: SparkDriver, counting: { requests: Requests | undefined }, computedBefore: number, gcDir: string): Promise<ActionResult> {
  const maxStage = Math.max(-1, ...(await stages(driver)).map((s) => s.stageId));
  const counts0: TaskCounts = await driver.counts();
  const gc0 = gcMarks(gcDir);
  const roles0 = sparkCpuByRole(driver.pid);
  const requests: Requests = {};
  counting.requests = requests;
  const answer = await driver.ok({ cmd: 'action', name: 'a' }, ACTION_TIMEOUT_MS);
  counting.requests = undefined;
  const roles1 = sparkCpuByRole(driver.pid);
  const gc = gcPeaksSince(gcDir, gc0);
  const cpuByRole = Object.fromEntries(Object.entries(roles1).map(([k, v]) => [k, v - (roles0[k] ?? 0)]));
  if (answer.correct !== true) throw new Error(`wrong result: ${JSON.stringify(answer)}`);
  const counts1 = await driver.counts();
  // The status store learns of task ends asynchronously (and may keep a stage's peak only after
  // its last task ended): wait briefly for the action's stages to carry their peaks.
  let heap = 0;
  let mine: StageData[] = [];
  for (let i = 0; i < 50; i++) {
    mine = (await stages(driver)).filter((s) => s.stageId > maxStage);
    heap = Math.max(0, ...mine.map((s) => s.peakExecutorMetrics?.JVMHeapMemory ?? 0));
    if (heap > 0) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const times = await taskTimes(driver, mine);
  return {
    wallSeconds: Number(answer.wall),
    mapTasksRerun: counts1.mapTasks - counts0.mapTasks,
    mapPartitionsRecomputed: Number(answer.mapPartitionsComputed) - computedBefore,
    fetchFailures: counts1.fetchFailures - counts0.fetchFailures,
    failedStages: counts1.failedStages - counts0.failedStages,
    requests,
    peakHeapMiB: heap / MiB,
    liveHeapMiB: gc.liveMiB,
    classesLoaded: gc.classesLoaded,
    // The whole tree: the process roles (the thread kinds are parts of exec:<id>).
    cpuSeconds: processCpu(roles1) - processCpu(roles0),
    cpuByRole,
    ...times,
  };
}

async function runApp(store: BenchStore, latencyMs: number, config: Config, round: number): Promise<AppResult> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-spark-read-'));
  const local = join(dir, 'local');
  await mkdir(local);
  const gcDir = join(dir, 'gc');
  await mkdir(gcDir);
  const bucket = await newBucket(store, `bench-read-${config}`);
  const counting: { requests: Requests | undefined } = { requests: undefined };
  const proxy = await FaultProxy.start(store.endpoint, (req) => {
    const r = counting.requests;
    if (r) {
      const k = `${req.method} ${objectKind(req.url)}`;
      r[k] = (r[k] ?? 0) + 1;
    }
    return undefined;
  });
  proxy.delayMs = latencyMs;
  const driver = await SparkDriver.start(LINE, {
    executors: EXECUTORS,
    executorMemoryMb: EXECUTOR_MB,
    localDir: local,
    jars: s3aJars(LINE),
    conf: confFor(config, store, proxy.endpoint, bucket, gcDir),
  });
  let agent: Awaited<ReturnType<typeof startAgentCli>> | undefined;
  try {
    if (config !== 'd') {
      agent = await startAgentCli(local, `s3://${bucket}/fallback`, driver.appId, {
        args: ['--s3-endpoint', store.endpoint, '--s3-force-path-style', '--s3-checksums', 'when_required', '--s3-region', 'us-east-1'],
        env: { AWS_ACCESS_KEY_ID: store.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: store.credentials.secretAccessKey },
      });
    }
    await driver.ok(JOB);
    const first = await driver.ok({ cmd: 'action', name: 'a' }, ACTION_TIMEOUT_MS);
    if (first.correct !== true) throw new Error(`first action wrong: ${JSON.stringify(first)}`);
    if (agent) await waitPersisted(agent.url, MAPS);
    const shuffleBytes = await shuffleSize(driver);
    const loadBefore = loadavg()[0] as number;
    const noKill = await measuredAction(driver, counting, Number(first.mapPartitionsComputed), gcDir);

    const before = await driver.counts();
    const [victim, held] = Object.entries(before.mapTasksByExecutor).sort((x, y) => y[1] - x[1] || x[0].localeCompare(y[0]))[0] as [string, number];
    if (REPLACEMENT === 'elsewhere') {
      const t = await driver.ok({ cmd: 'executorTarget', n: EXECUTORS - 1 });
      if (t.accepted !== true) throw new Error('the cluster manager refused the executor target');
    }
    const tKill = performance.now();
    await driver.killExecutor(victim);
    let repointed = 0;
    let recomputedByPlugin = 0;
    if (config !== 'd') {
      const m = await driver.waitForPlugin((x) => Number(x.executorsRecovered) >= 1, 300_000);
      repointed = Number(m.outputsRepointed);
      recomputedByPlugin = Number(m.outputsRecomputed);
    }
    const recoverySeconds = (performance.now() - tKill) / 1000;
    const afterKill = await measuredAction(driver, counting, Number(first.mapPartitionsComputed) + noKill.mapPartitionsRecomputed, gcDir);
    const executorsAfter = Object.keys(afterKill.cpuByRole).filter((k) => k.startsWith('exec:')).length;
    if (REPLACEMENT === 'elsewhere' && executorsAfter !== EXECUTORS - 1) {
      throw new Error(`--replacement elsewhere: ${executorsAfter} executors ran the action after the kill, not ${EXECUTORS - 1}`);
    }
    return {
      store: store.kind,
      latencyMs,
      config,
      round,
      shuffleBytes,
      firstActionSeconds: Number(first.wall),
      held,
      repointed,
      recomputedByPlugin,
      fallbackBlocks: repointed * REDUCERS,
      recoverySeconds,
      noKill,
      afterKill,
      loadBefore,
    };
  } finally {
    await driver.stop().catch(() => undefined);
    agent?.child.kill('SIGKILL');
    await proxy.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Shuffle bytes written by the first action (Spark's task metrics, through the REST API). */
async function shuffleSize(driver: SparkDriver): Promise<number> {
  const r = await fetch(`${driver.ui}/api/v1/applications/${driver.appId}/stages`);
  const all = (await r.json()) as { shuffleWriteBytes?: number }[];
  return all.reduce((a, s) => a + (s.shuffleWriteBytes ?? 0), 0);
}

/** `{"driver":3.1,"exec:0":9.0,...}`, one decimal, sorted by role. */
function roles(cpu: SparkCpu): string {
  return JSON.stringify(Object.fromEntries(Object.entries(cpu).sort(([x], [y]) => x.localeCompare(y)).map(([k, v]) => [k, Math.round(v * 10) / 10])));
}

function cell(xs: number[], digits = 1): string {
  if (xs.length === 0) return '–';
  const m = median(xs).toFixed(digits);
  return xs.length === 1 ? m : `${m} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;
}

const storeRequests = (a: ActionResult): number =>
  Object.entries(a.requests)
    .filter(([k]) => / (index|data)$/.test(k))
    .reduce((s, [, n]) => s + n, 0);

function requestMix(rs: ActionResult[]): string {
  const keys = [...new Set(rs.flatMap((r) => Object.keys(r.requests)))].sort();
  return keys.map((k) => `${k} ${median(rs.map((r) => r.requests[k] ?? 0)).toFixed(0)}`).join(', ') || 'none';
}

function report(results: AppResult[], ceilings: Map<StoreKind, { direct: Ceiling; proxied: Ceiling }>): void {
  for (const store of STORES) {
    const c = ceilings.get(store);
    if (c) {
      console.log(`\n## ${store}: GET ceiling (ranged GETs of one block, ${c.direct.concurrency} at a time)`);
      for (const [name, x] of [['straight to the store', c.direct], ['through the latency proxy at 0 ms', c.proxied]] as const) {
        // CPU per GET does not depend on what else the machine runs: on an idle machine the store
        // could serve about (its cores) / (CPU per GET) GETs a second.
        console.log(`- ${name}: ${x.perSecond.toFixed(0)} GET/s, mean ${x.meanMs.toFixed(1)} ms; store CPU ${(x.storeCpuSeconds / x.wallSeconds).toFixed(2)} cores, `
          + `${((1000 * x.storeCpuSeconds) / x.requests).toFixed(2)} CPU ms per GET; measuring client ${(x.clientCpuSeconds / x.wallSeconds).toFixed(2)} cores`);
      }
    }
    for (const latency of LATENCIES) {
      const of = (config: Config): AppResult[] => results.filter((r) => r.store === store && r.latencyMs === latency && r.config === config);
      const ran = CONFIGS.filter((cfg) => of(cfg).length > 0);
      if (ran.length === 0) continue;
      const rounds = Math.max(...ran.map((cfg) => of(cfg).length));
      console.log(`\n## ${store}, ${latency} ms added per response: median (min–max) of ${rounds} round(s)`);
      const cols: { name: string; rs: ActionResult[]; apps: AppResult[] }[] = [];
      const aApp = of('b').length > 0 ? 'b' : (ran[0] as Config);
      cols.push({ name: `${CONFIG_NAMES.a} [app ${aApp}]`, rs: of(aApp).map((r) => r.noKill), apps: [] });
      for (const cfg of ran) cols.push({ name: CONFIG_NAMES[cfg], rs: of(cfg).map((r) => r.afterKill), apps: of(cfg) });
      console.log(`| | ${cols.map((x) => x.name).join(' | ')} |`);
      console.log(`| --- | ${cols.map(() => '---').join(' | ')} |`);
      const row = (name: string, f: (r: ActionResult, app?: AppResult) => number | undefined, digits = 1): void => {
        const cellsOf = cols.map((col) => cell(col.rs.map((r, i) => f(r, col.apps[i])).filter((v): v is number => v !== undefined && Number.isFinite(v)), digits));
        console.log(`| ${name} | ${cellsOf.join(' | ')} |`);
      };
      row('action wall, s', (r) => r.wallSeconds, 2);
      row('map tasks re-run', (r) => r.mapTasksRerun, 0);
      row('fetch failures / failed stages', (r) => r.fetchFailures + r.failedStages, 0);
      row('outputs re-pointed (of the killed executor\'s)', (_r, app) => (app && app.config !== 'd' ? app.repointed : undefined), 0);
      row('fallback blocks (re-pointed × reducers)', (_r, app) => (app && app.config !== 'd' ? app.fallbackBlocks : undefined), 0);
      row('requests for shuffle objects (index + data)', (r) => storeRequests(r), 0);
      row('requests per fallback block', (r, app) => (app && app.fallbackBlocks > 0 ? storeRequests(r) / app.fallbackBlocks : undefined), 2);
      row('peak executor heap (JVMHeapMemory), MiB', (r) => r.peakHeapMiB, 0);
      row('largest executor heap after a GC, MiB', (r) => r.liveHeapMiB, 0);
      row('CPU s (driver + executors + Python)', (r) => r.cpuSeconds, 1);
      const roleSum = (r: ActionResult, prefix: string): number => Object.entries(r.cpuByRole).filter(([k]) => k.startsWith(prefix)).reduce((a, [, v]) => a + v, 0);
      row('  of which executor JVMs, s', (r) => roleSum(r, 'exec:'), 1);
      row('  of which their JIT compilers, s', (r) => roleSum(r, 'jit:'), 1);
      row('  of which their GC threads, s', (r) => roleSum(r, 'gc:'), 1);
      row('  of which their task threads, s', (r) => roleSum(r, 'task:'), 1);
      row('  of which their read threads, s', (r) => roleSum(r, 'read:'), 1);
      row('  of which Python workers, s', (r) => roleSum(r, 'py:'), 1);
      row('classes loaded by the JVMs', (r) => r.classesLoaded, 0);
      row("tasks' run time, summed, s", (r) => r.taskRunSeconds, 1);
      row("tasks' shuffle fetch wait, summed, s", (r) => r.fetchWaitSeconds, 1);
      for (const col of cols) console.log(`- ${col.name} requests: ${requestMix(col.rs)}`);
      const med = (cfg: Config | 'a'): number => median(cfg === 'a' ? of(aApp).map((r) => r.noKill.wallSeconds) : of(cfg).map((r) => r.afterKill.wallSeconds));
      const ratios: string[] = [];
      const has = (cfg: Config): boolean => of(cfg).length > 0;
      if (has('b')) ratios.push(`b/a ${(med('b') / med('a')).toFixed(2)}`);
      if (has('c')) ratios.push(`c/a ${(med('c') / med('a')).toFixed(2)}`);
      if (has('b') && has('d')) ratios.push(`b/d ${(med('b') / med('d')).toFixed(2)}`);
      if (has('c') && has('d')) ratios.push(`c/d ${(med('c') / med('d')).toFixed(2)}`);
      const cpuMed = (cfg: Config | 'a'): number => median(cfg === 'a' ? of(aApp).map((r) => r.noKill.cpuSeconds) : of(cfg).map((r) => r.afterKill.cpuSeconds));
      if (has('b')) ratios.push(`CPU b/a ${(cpuMed('b') / cpuMed('a')).toFixed(2)}`);
      if (has('b') && has('d')) {
        // Per round: b and d of the same round ran back to back, on the same machine load.
        const perRound = of('b').map((b) => {
          const d = of('d').find((x) => x.round === b.round);
          return d ? (b.afterKill.wallSeconds / d.afterKill.wallSeconds).toFixed(2) : '–';
        });
        ratios.push(`b/d per round ${perRound.join(', ')}`);
      }
      const aOf = ran.map((cfg) => `${cfg}'s app ${cell(of(cfg).map((r) => r.noKill.wallSeconds), 2)} s`).join(', ');
      console.log(`\nratios of the medians (wall unless said): ${ratios.join(', ') || 'none'}; (a) in each app: ${aOf}`);
    }
  }
}

async function main(): Promise<void> {
  if (!existsSync(AGENT_CLI) || !existsSync(PLUGIN_JAR)) throw new Error('build first: npm run build (needs Maven for the plugin jar)');
  if (KEYS < REDUCERS) throw new Error('more reducers than keys: some blocks would be empty');
  console.log(`Spark ${LINE.version}, local-cluster[${EXECUTORS},1,${EXECUTOR_MB + 256}] (executor heap ${EXECUTOR_MB} MiB); job: ${ROWS} rows of ${PAD} B random padding in ${MAPS} map partitions → ${REDUCERS} reducers, ${WORK} SHA-256 rounds per row; `
    + `stores ${STORES.join(', ')}; added latency ${LATENCIES.join(', ')} ms; configurations ${CONFIGS.join(', ')} (+ (a) in each); ${ROUNDS} round(s); read settings ${JSON.stringify(READ_CONF)}; replacement executor ${REPLACEMENT === 'here' ? 'started here (on the same 2 cores)' : 'elsewhere (none started on this machine)'}; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  const dir = await mkdtemp(join(tmpdir(), 'bench-spark-read-stores-'));
  const results: AppResult[] = [];
  const ceilings = new Map<StoreKind, { direct: Ceiling; proxied: Ceiling }>();
  const blockBytes = Math.max(1, Math.round((MB * 1e6) / (MAPS * REDUCERS)));
  try {
    for (const kind of STORES) {
      const store = await startStore(kind, root, dir);
      try {
        const bucket = await newBucket(store, 'bench-read-ceiling');
        const proxy = await FaultProxy.start(store.endpoint);
        try {
          const direct = await getCeiling(store, store.endpoint, bucket, CEILING_CONCURRENCY, CEILING_REQUESTS, blockBytes);
          const proxied = await getCeiling(store, proxy.endpoint, bucket, CEILING_CONCURRENCY, CEILING_REQUESTS, blockBytes);
          ceilings.set(kind, { direct, proxied });
          console.log(`${kind} GET ceiling (${blockBytes} B ranges, ${CEILING_CONCURRENCY} at a time): ${direct.perSecond.toFixed(0)} GET/s straight (${((1000 * direct.storeCpuSeconds) / direct.requests).toFixed(2)} store CPU ms per GET), `
            + `${proxied.perSecond.toFixed(0)} GET/s through the proxy; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
        } finally {
          await proxy.close();
        }
        let turn = 0;
        for (let round = 1; round <= ROUNDS; round++) {
          for (const latency of LATENCIES) {
            // Rotate which configuration goes first, so none always runs on a fresher machine.
            const order = CONFIGS.map((_, i) => CONFIGS[(i + turn) % CONFIGS.length] as Config);
            turn++;
            for (const config of order) {
              const r = await runApp(store, latency, config, round);
              results.push(r);
              const k = r.afterKill;
              console.log(`${kind} ${latency} ms round ${round} ${CONFIG_NAMES[config]}: first action ${r.firstActionSeconds.toFixed(1)} s, shuffle ${(r.shuffleBytes / MiB).toFixed(0)} MiB; `
                + `(a) ${r.noKill.wallSeconds.toFixed(2)} s; after the kill ${k.wallSeconds.toFixed(2)} s, map tasks re-run ${k.mapTasksRerun}, held ${r.held}, re-pointed ${r.repointed}, `
                + `shuffle-object requests ${storeRequests(k)}${r.fallbackBlocks > 0 ? ` (${(storeRequests(k) / r.fallbackBlocks).toFixed(2)} per block)` : ''} [${requestMix([k])}], `
                + `peak heap ${k.peakHeapMiB.toFixed(0)} MiB ((a) ${r.noKill.peakHeapMiB.toFixed(0)}), after GC ${k.liveHeapMiB.toFixed(0)} MiB ((a) ${r.noKill.liveHeapMiB.toFixed(0)}), fetch failures ${k.fetchFailures}, recovery ${r.recoverySeconds.toFixed(1)} s, load ${r.loadBefore.toFixed(1)}; `
                + `tasks' run time ${k.taskRunSeconds.toFixed(1)} s ((a) ${r.noKill.taskRunSeconds.toFixed(1)}), fetch wait ${k.fetchWaitSeconds.toFixed(1)} s ((a) ${r.noKill.fetchWaitSeconds.toFixed(1)}), run s by executor ${JSON.stringify(Object.fromEntries(Object.entries(k.runSecondsByExecutor).map(([e, v]) => [e, Math.round(v)])))}; `
                + `CPU s by role ${roles(k.cpuByRole)} ((a) ${roles(r.noKill.cpuByRole)})`);
            }
          }
        }
      } finally {
        await store.close();
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  report(results, ceilings);
  const out = join(root, 'bench', 'out');
  await mkdir(out, { recursive: true });
  const file = `spark-read-results-${STORES.join('-')}.json`;
  await writeFile(join(out, file), JSON.stringify({ ceilings: Object.fromEntries(ceilings), results }, null, 2));
  console.log(`\nraw results: bench/out/${file}; load average at the end ${loadavg().map((x) => x.toFixed(1)).join(' ')} (a shared machine: other helpers' work ran alongside)`);
}

await main();
