/**
 * `npm run bench:spark-overhead`: what the agent + plugin cost a Spark job that loses nothing,
 * against stock Spark, side by side in one run (issue 19: "the price of insurance").
 *
 * Each run is a fresh pyspark driver in local-cluster mode (3 executor JVMs of 1 core on this
 * 2-core machine) running one action: a map stage made CPU-bound on purpose (SHA-256 rounds over
 * each row in the Python workers) writing an incompressible shuffle (a few hundred MB by default,
 * 1 GiB+ with `--large`), then reducers summing per key. The `agent` side runs the plugin with the
 * README's recommended settings (plugin, decommissioning on, shuffle migration off, the fallback
 * path on the agent's bucket over s3a://) and the built agent CLI with its defaults, writing to the
 * Swift s3api on loopback. The sides alternate within each round and which goes first alternates
 * between rounds; ratios are taken per round (same minutes, same load), then their median.
 *
 * Measured per run, for the action: its wall time (the driver's, around collect()), CPU seconds of
 * the driver's process tree (driver JVM, executor JVMs, Python workers), the agent's CPU seconds
 * and peak RSS, the Swift s3api's CPU seconds (its proxy, object, container and account servers and
 * memcached: on a real node the store is elsewhere, so it is reported apart), what the agent still
 * had pending when the action ended, and how long after it everything was persisted. Agent CPU is
 * also given per GiB written back (from its start to the last output persisted).
 *
 *   npm run bench:spark-overhead [-- --rounds 3 --large --sides stock,agent,agent-pod,plugin-only
 *       --rows 200000 --pad 1000 --work 10 --maps 120 --reducers 200 --executors 3
 *       --agent-nice 0 --agent-share 0.25 --agent-node-args "--cpu-prof --cpu-prof-dir bench/out/prof"
 *       --agent-args "--upload-concurrency 4"]
 *
 * `plugin-only` runs the plugin's settings without an agent (what the settings alone cost);
 * `agent-fswatch` is `agent` with `--file-events fs.watch` (Node's own watcher on the NN
 * directories instead of the inotifywait child `agent` uses when it is installed).
 * `--agent-nice N` starts the agent under `nice -n N` (CPU priority below Spark's).
 * `agent-pod` is `agent` at the CPU share its pod has against the executors' in Kubernetes. There
 * each pod (and each container in it) is a cgroup whose CPU weight follows its CPU request, and
 * under contention CPU goes by weight; here every process is in one scheduling group, so the
 * agent gets the same share from the nice value whose kernel weight is nearest `--agent-share`
 * times an executor's (default 0.25: the chart's DaemonSet requests 250m, local-cluster's
 * executors have 1 core each: nice 6, weight 272 against 1024).
 * The default sides are stock, agent and agent-pod: the agent at the executors' own priority and
 * as a pod of the chart runs it.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { S3Store } from '../../agent/store/s3/s3-store.js';
import { AGENT_CLI, PLUGIN_JAR, pluginConf, s3aJars, SparkDriver, sparkLine, startAgentCli, type SparkLine } from '../../test/kit/spark-harness.js';
import { procStats, swiftCpuSeconds, treeCpuSeconds, treeCpuTimes } from './proc-stats.js';
import { flag } from './args.js';
import { median } from './stats.js';

const run = promisify(execFile);
const has = (name: string): boolean => process.argv.includes(`--${name}`);
const LARGE = has('large');
const ROUNDS = Number(flag('rounds', '3'));
const MAPS = Number(flag('maps', '120'));
const REDUCERS = Number(flag('reducers', '200'));
// Default: 200,000 rows of 1000 B, about 200 MB of shuffle; --large: 1.1 GB.
const ROWS = Number(flag('rows', LARGE ? '1100000' : '200000'));
const PAD = Number(flag('pad', '1000'));
const WORK = Number(flag('work', '10'));
const EXECUTORS = Number(flag('executors', '3'));
const AGENT_NICE = Number(flag('agent-nice', '0'));
const AGENT_SHARE = Number(flag('agent-share', '0.25'));
/** The kernel's CFS weights of nice 0..19 (kernel/sched/core.c, sched_prio_to_weight). */
const NICE_WEIGHTS = [1024, 820, 655, 526, 423, 335, 272, 215, 172, 137, 110, 87, 70, 56, 45, 36, 29, 23, 18, 15];
/** The nice value whose weight is nearest `share` of nice 0's. */
function niceForShare(share: number): number {
  let best = 0;
  NICE_WEIGHTS.forEach((w, n) => {
    if (Math.abs(w - share * 1024) < Math.abs((NICE_WEIGHTS[best] as number) - share * 1024)) best = n;
  });
  return best;
}
const POD_NICE = niceForShare(AGENT_SHARE);
const AGENT_NODE_ARGS = flag('agent-node-args', '').split(' ').filter(Boolean);
const AGENT_ARGS = flag('agent-args', '').split(' ').filter(Boolean);
const SIDES = flag('sides', 'stock,agent,agent-pod').split(',') as Side[];
const LINE: SparkLine = sparkLine(flag('spark', '3.5.8'));
const here = dirname(fileURLToPath(import.meta.url));
// dist/scripts/bench -> repository root
const root = resolve(here, '..', '..', '..');
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const BUCKET = 'bench-spark-overhead';
const credentials = { accessKeyId: 'test:tester', secretAccessKey: 'testing' };
const JOB = { cmd: 'define', name: 'a', rows: ROWS, maps: MAPS, reducers: REDUCERS, keys: 997, pad: PAD, random: true, work: WORK };

type Side = 'stock' | 'agent' | 'agent-pod' | 'agent-fswatch' | 'plugin-only';
const AGENT_SIDES: readonly Side[] = ['agent', 'agent-pod', 'agent-fswatch'];

interface RunResult {
  side: Side;
  round: number;
  wallSeconds: number;
  sparkCpuSeconds: number;
  /** The part of sparkCpuSeconds spent in the kernel (where inotify's cost to the writer shows). */
  sparkSystemSeconds: number;
  shuffleBytes: number;
  storeCpuSeconds: number;
  agentCpuSeconds?: number;
  /** Agent CPU from its start to the last output persisted. */
  agentTotalCpuSeconds?: number;
  /** Agent CPU from the action's start (agent started, first scan done) to the last output persisted. */
  agentWritebackCpuSeconds?: number;
  agentPeakRssMiB?: number;
  persistedBytes?: number;
  pendingOutputsAtEnd?: number;
  pendingMiBAtEnd?: number;
  /** Seconds from the action's end to the last output persisted. */
  drainAfterSeconds?: number;
  loadBefore: number;
  loadAfter: number;
}

async function shuffleDataBytes(dir: string): Promise<number> {
  let sum = 0;
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else if (/^shuffle_\d+_\d+_0\.(data|index)$/.test(e.name)) sum += (await stat(p)).size;
    }
  };
  await walk(dir);
  return sum;
}

type Agent = Awaited<ReturnType<typeof startAgentCli>>;

/** The built agent CLI, its defaults, writing to Swift; resolves once its first scan is done. */
function startAgent(local: string, endpoint: string, prefix: string, appId: string, side: Side): Promise<Agent> {
  return startAgentCli(local, `s3://${BUCKET}/${prefix}`, appId, {
    args: ['--s3-endpoint', endpoint, '--s3-force-path-style', '--s3-checksums', 'when_required', ...(side === 'agent-fswatch' ? ['--file-events', 'fs.watch'] : []), ...AGENT_ARGS],
    env: { AWS_ACCESS_KEY_ID: credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey },
    agentDefaults: true,
    nodeArgs: AGENT_NODE_ARGS,
    nice: side === 'agent-pod' ? POD_NICE : AGENT_NICE,
  });
}

interface Status {
  persistedOutputs: number;
  persistedBytes: number;
  pendingOutputs: number;
  pendingBytes: number;
  failedFiles: number;
}

async function status(url: string): Promise<Status> {
  const s = (await (await fetch(`${url}/v1/status`)).json()) as { writeback?: Status } & Status;
  return s.writeback ?? s;
}

async function runSide(side: Side, round: number, endpoint: string, admin: S3Store): Promise<RunResult> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-spark-overhead-'));
  const local = join(dir, 'local');
  await mkdir(local);
  const prefix = `run-${Date.now()}-${side}`;
  const s3a = {
    'spark.hadoop.fs.s3a.endpoint': endpoint,
    'spark.hadoop.fs.s3a.path.style.access': 'true',
    'spark.hadoop.fs.s3a.connection.ssl.enabled': 'false',
    'spark.hadoop.fs.s3a.endpoint.region': 'us-east-1',
    'spark.hadoop.fs.s3a.access.key': credentials.accessKeyId,
    'spark.hadoop.fs.s3a.secret.key': credentials.secretAccessKey,
    'spark.hadoop.fs.s3a.aws.credentials.provider': 'org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider',
    // Swift answers 501 to S3A's aws-chunked PUTs (the plugin's heartbeat); V2 signing sends plain bodies.
    'spark.hadoop.fs.s3a.signing-algorithm': 'S3SignerType',
  };
  // The README's recommended settings ("Spark configuration").
  const recommended = {
    ...pluginConf(`s3a://${BUCKET}/${prefix}/`),
    'spark.decommission.enabled': 'true',
    'spark.storage.decommission.enabled': 'true',
    'spark.storage.decommission.shuffleBlocks.enabled': 'false',
    'spark.executor.decommission.forceKillTimeout': '50s',
    ...s3a,
  };
  const withPlugin = side !== 'stock';
  const driver = await SparkDriver.start(LINE, {
    executors: EXECUTORS,
    executorMemoryMb: 768,
    localDir: local,
    ...(withPlugin ? { jars: s3aJars(LINE), conf: recommended } : {}),
  });
  let agent: Agent | undefined;
  try {
    if (AGENT_SIDES.includes(side)) agent = await startAgent(local, endpoint, prefix, driver.appId, side);
    await driver.ok(JOB);
    const loadBefore = loadavg()[0] as number;
    const cpu0 = treeCpuTimes(driver.pid);
    const store0 = swiftCpuSeconds();
    // The agent's CPU includes its inotifywait children's (treeCpuSeconds).
    const agent0 = agent ? treeCpuSeconds(agent.child.pid as number) : undefined;
    const action = await driver.ok({ cmd: 'action', name: 'a' }, 1_800_000);
    const tEnd = performance.now();
    const cpu1 = treeCpuTimes(driver.pid);
    const agent1 = agent ? treeCpuSeconds(agent.child.pid as number) : undefined;
    if (action.correct !== true) throw new Error(`action wrong: ${JSON.stringify(action)}`);
    const shuffleBytes = await shuffleDataBytes(local);
    let extra: Partial<RunResult> = {};
    if (agent) {
      const atEnd = await status(agent.url);
      let s = atEnd;
      const deadline = Date.now() + 600_000;
      // Every output the executors committed: the data and index files on disk.
      while (s.persistedBytes < shuffleBytes || s.pendingOutputs > 0) {
        if (Date.now() > deadline) throw new Error(`agent never persisted ${shuffleBytes} bytes: ${JSON.stringify(s)}`);
        if (s.failedFiles > 0) throw new Error(`agent reports failed files: ${JSON.stringify(s)}`);
        await new Promise((r) => setTimeout(r, 50));
        s = await status(agent.url);
      }
      const drainAfter = (performance.now() - tEnd) / 1000;
      const agent2 = treeCpuSeconds(agent.child.pid as number);
      extra = {
        agentCpuSeconds: (agent1 ?? NaN) - (agent0 ?? NaN),
        agentTotalCpuSeconds: agent2,
        agentWritebackCpuSeconds: agent2 - (agent0 ?? NaN),
        agentPeakRssMiB: procStats(agent.child.pid as number)?.peakRssMiB ?? NaN,
        persistedBytes: s.persistedBytes,
        pendingOutputsAtEnd: atEnd.pendingOutputs,
        pendingMiBAtEnd: atEnd.pendingBytes / MiB,
        drainAfterSeconds: drainAfter,
      };
    }
    const storeCpu = swiftCpuSeconds() - store0;
    return {
      side,
      round,
      wallSeconds: Number(action.wall),
      sparkCpuSeconds: cpu1.user + cpu1.system - cpu0.user - cpu0.system,
      sparkSystemSeconds: cpu1.system - cpu0.system,
      shuffleBytes,
      storeCpuSeconds: storeCpu,
      ...extra,
      loadBefore,
      loadAfter: loadavg()[0] as number,
    };
  } finally {
    if (agent) {
      agent.child.kill('SIGINT');
      await new Promise((r) => (agent!.child.exitCode !== null ? r(undefined) : agent!.child.once('exit', r)));
    }
    await driver.stop().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
    // What landed (the agent's copies, the plugin's heartbeat) goes, so the server's disk does not fill up.
    const keys: string[] = [];
    for await (const o of admin.list(`${prefix}/`)) keys.push(o.key);
    for (let i = 0; i < keys.length; i += 500) await admin.deleteMany(keys.slice(i, i + 500));
  }
}

function summary(rs: RunResult[], f: (r: RunResult) => number | undefined, digits = 2): string {
  const xs = rs.map((r) => f(r) ?? NaN).filter((x) => !Number.isNaN(x));
  if (xs.length === 0) return '—';
  return `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;
}

async function main(): Promise<void> {
  if (!existsSync(AGENT_CLI) || !existsSync(PLUGIN_JAR)) throw new Error('build first: npm run build (needs Maven for the plugin jar)');
  const { stdout } = await run('bash', [join(root, 'scripts', 'swift-s3.sh'), 'start'], { timeout: 600_000 });
  const endpoint = stdout.trim().split('\n').pop() as string;
  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
  await client.send(new CreateBucketCommand({ Bucket: BUCKET })).catch((err: { name?: string }) => {
    if (err.name !== 'BucketAlreadyOwnedByYou' && err.name !== 'BucketAlreadyExists') throw err;
  });
  client.destroy();
  const admin = new S3Store({ bucket: BUCKET, endpoint, forcePathStyle: true, credentials, checksums: 'when_required' });
  console.log(`Spark ${LINE.version}, ${ROUNDS} rounds, sides ${SIDES.join(', ')}; job: ${ROWS} rows x ${PAD} B incompressible in ${MAPS} map partitions, ${WORK} SHA-256 rounds per row, ${REDUCERS} reducers; local-cluster[${EXECUTORS},1,1024]; store: Swift s3api at ${endpoint}${AGENT_NICE ? `; agent under nice -n ${AGENT_NICE}` : ''}${SIDES.includes('agent-pod') ? `; agent-pod: share ${AGENT_SHARE} of an executor's CPU weight, nice -n ${POD_NICE} (weight ${NICE_WEIGHTS[POD_NICE]})` : ''}${AGENT_ARGS.length ? `; agent args ${AGENT_ARGS.join(' ')}` : ''}; load ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  const results: RunResult[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    const order = round % 2 ? SIDES : [...SIDES].reverse();
    for (const side of order) {
      const r = await runSide(side, round, endpoint, admin);
      results.push(r);
      console.log(
        `round ${round} ${side.padEnd(11)} wall ${r.wallSeconds.toFixed(2)} s, Spark CPU ${r.sparkCpuSeconds.toFixed(1)} s (system ${r.sparkSystemSeconds.toFixed(1)} s), shuffle ${(r.shuffleBytes / MiB).toFixed(0)} MiB, store CPU ${r.storeCpuSeconds.toFixed(1)} s`
          + (r.agentCpuSeconds !== undefined
            ? `, agent CPU ${r.agentCpuSeconds.toFixed(2)} s during the action (${((r.agentWritebackCpuSeconds as number) / ((r.persistedBytes as number) / GiB)).toFixed(2)} s/GiB to the last persisted; with start-up ${((r.agentTotalCpuSeconds as number) / ((r.persistedBytes as number) / GiB)).toFixed(2)} s/GiB), peak RSS ${(r.agentPeakRssMiB as number).toFixed(0)} MiB, pending at the end ${r.pendingOutputsAtEnd} outputs / ${(r.pendingMiBAtEnd as number).toFixed(1)} MiB, all persisted ${(r.drainAfterSeconds as number).toFixed(2)} s after`
            : '')
          + `, load ${r.loadBefore.toFixed(1)} -> ${r.loadAfter.toFixed(1)}`,
      );
    }
  }
  await admin.close();
  const of = (side: Side): RunResult[] => results.filter((r) => r.side === side);
  console.log(`\n## median (min–max) over ${ROUNDS} rounds`);
  console.log(`| | ${SIDES.join(' | ')} |`);
  console.log(`| --- |${SIDES.map(() => ' --- |').join('')}`);
  const row = (name: string, f: (r: RunResult) => number | undefined, digits?: number): void => console.log(`| ${name} | ${SIDES.map((s) => summary(of(s), f, digits)).join(' | ')} |`);
  row('action wall, s', (r) => r.wallSeconds);
  row('Spark CPU (driver, executors, Python workers), s', (r) => r.sparkCpuSeconds, 1);
  row('of which system (kernel) time, s', (r) => r.sparkSystemSeconds, 1);
  row('shuffle on disk, MiB', (r) => r.shuffleBytes / MiB, 0);
  row('store (Swift) CPU, s', (r) => r.storeCpuSeconds, 1);
  row('agent CPU during the action, s', (r) => r.agentCpuSeconds);
  const perGiB = (cpu: number | undefined, r: RunResult): number | undefined => (cpu === undefined ? undefined : cpu / ((r.persistedBytes as number) / GiB));
  row('agent CPU action start to last persisted, s/GiB', (r) => perGiB(r.agentWritebackCpuSeconds, r));
  row('agent CPU process start to last persisted, s/GiB', (r) => perGiB(r.agentTotalCpuSeconds, r));
  row('agent peak RSS, MiB', (r) => r.agentPeakRssMiB, 0);
  row('pending at the action end, outputs', (r) => r.pendingOutputsAtEnd, 0);
  row('all persisted after the action end, s', (r) => r.drainAfterSeconds);
  row('load average (1 min) before', (r) => r.loadBefore, 1);
  // Per round: the same minutes and load for both sides.
  for (const side of SIDES.filter((s) => s !== 'stock')) {
    if (!SIDES.includes('stock')) break;
    const per = (f: (r: RunResult) => number): number[] => of(side).map((r) => f(r) / f(of('stock').find((x) => x.round === r.round) as RunResult));
    const wall = per((r) => r.wallSeconds);
    console.log(`\n${side} / stock, per round: wall ${wall.map((x) => x.toFixed(3)).join(', ')}; median ${median(wall).toFixed(3)} (goal <= 1.05, beyond it <= 1.03); ratio of medians ${(median(of(side).map((r) => r.wallSeconds)) / median(of('stock').map((r) => r.wallSeconds))).toFixed(3)}; Spark CPU median ${median(per((r) => r.sparkCpuSeconds)).toFixed(3)}, Spark system time median ${median(per((r) => r.sparkSystemSeconds)).toFixed(3)}`);
  }
  const out = join(root, 'bench', 'out');
  await mkdir(out, { recursive: true });
  const file = `spark-overhead-${LARGE ? 'large' : 'default'}-${Date.now()}.json`;
  await writeFile(join(out, file), JSON.stringify({ args: process.argv.slice(2), results }, null, 2));
  console.log(`\nraw results: bench/out/${file}; load average at the end ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
}

await main();
