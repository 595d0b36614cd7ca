/** CPU time and peak RSS of a child process, read from /proc (Linux). */
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcStats {
  /** Peak resident set size in MiB (VmHWM). */
  peakRssMiB: number;
  /** User + system CPU seconds so far. */
  cpuSeconds: number;
}

export function procStats(pid: number): ProcStats | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const hwm = /VmHWM:\s+(\d+) kB/.exec(status);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return { peakRssMiB: Number(hwm?.[1] ?? 0) / 1024, cpuSeconds: ticks / 100 };
  } catch {
    return undefined;
  }
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] as number;
}

/**
 * CPU seconds of a process and all its live descendants, plus what their reaped children used
 * (cutime/cstime): a child that exits between two readings is still counted, through its parent.
 */
export function treeCpuSeconds(rootPid: number): number {
  const t = treeCpuTimes(rootPid);
  return t.user + t.system;
}

/** treeCpuSeconds, split into user and system (kernel) time. */
export function treeCpuTimes(rootPid: number): { user: number; system: number } {
  const { parent, ticks } = procTable();
  const inTree = (pid: number): boolean => {
    for (let p: number | undefined = pid; p !== undefined && p > 1; p = parent.get(p)) if (p === rootPid) return true;
    return false;
  };
  let user = 0;
  let system = 0;
  for (const [pid, [u, s]] of ticks) {
    if (!inTree(pid)) continue;
    user += u;
    system += s;
  }
  return { user: user / 100, system: system / 100 };
}

/**
 * Every live process's parent, and its user and system CPU ticks, each with what its reaped
 * children used (cutime, cstime).
 */
function procTable(): { parent: Map<number, number>; ticks: Map<number, [number, number]> } {
  const parent = new Map<number, number>();
  const ticks = new Map<number, [number, number]>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${d}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    parent.set(Number(d), Number(f[1]));
    ticks.set(Number(d), [Number(f[11]) + Number(f[13]), Number(f[12]) + Number(f[14])]);
  }
  return { parent, ticks };
}

/** CPU seconds of one Spark process tree's parts, by role (see {@link sparkCpuByRole}). */
export type SparkCpu = Record<string, number>;

/**
 * CPU seconds so far of a local-cluster Spark driver's tree, by role: `driver` (the pyspark
 * driver and its JVM), `exec:<id>` (an executor JVM), `jit:<id>`, `gc:<id>`, `task:<id>`,
 * `read:<id>` (that JVM's live JIT compiler, GC, task and shuffle-agent read threads, also counted
 * in `exec:<id>`; a thread that ended is only in `exec:<id>`), `py:<id>` (the Python workers an
 * executor forked, reaped ones included through cutime). Two readings subtracted say where an action's CPU went.
 */
export function sparkCpuByRole(rootPid: number): SparkCpu {
  const { parent, ticks } = procTable();
  const executorOf = new Map<number, string>();
  for (const pid of ticks.keys()) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (!argv.some((a) => a.endsWith('CoarseGrainedExecutorBackend'))) continue;
      const i = argv.indexOf('--executor-id');
      executorOf.set(pid, i >= 0 ? (argv[i + 1] ?? '?') : '?');
    } catch {
      continue;
    }
  }
  const out: SparkCpu = {};
  const add = (k: string, v: number): void => {
    out[k] = (out[k] ?? 0) + v / 100;
  };
  for (const [pid, [user, system]] of ticks) {
    const t = user + system;
    let role: string | undefined;
    let inTree = false;
    for (let p: number | undefined = pid; p !== undefined && p > 1; p = parent.get(p)) {
      const id = executorOf.get(p);
      if (role === undefined && id !== undefined) role = p === pid ? `exec:${id}` : `py:${id}`;
      if (p === rootPid) {
        inTree = true;
        break;
      }
    }
    if (!inTree) continue;
    add(role ?? 'driver', t);
    if (role?.startsWith('exec:')) {
      for (const [kind, n] of Object.entries(threadTicks(pid))) add(`${kind}:${role.slice(5)}`, n);
    }
  }
  return out;
}

/** CPU seconds of the whole tree in a sparkCpuByRole reading: its processes, not their thread kinds. */
export function processCpu(cpu: SparkCpu): number {
  return Object.entries(cpu).filter(([k]) => k === 'driver' || k.startsWith('exec:') || k.startsWith('py:')).reduce((a, [, v]) => a + v, 0);
}

/** Thread kinds of an executor JVM by their name (comm, truncated to 15 characters by Linux). */
const THREAD_KINDS: [string, RegExp][] = [
  ['jit', /^C\d CompilerThre/],
  ['gc', /^(GC Thread|G1 |VM Thread)/],
  ['task', /^Executor task l/],
  ['read', /^shuffle-agent-r/],
];

/** User + system ticks of a JVM's live threads, by kind (THREAD_KINDS; others are not counted). */
function threadTicks(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tids) {
    try {
      const comm = readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8');
      const kind = THREAD_KINDS.find(([, re]) => re.test(comm))?.[0];
      if (kind === undefined) continue;
      const stat = readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out[kind] = (out[kind] ?? 0) + Number(f[11]) + Number(f[12]);
    } catch {
      continue;
    }
  }
  return out;
}

/**
 * CPU seconds of the Swift s3api's processes (proxy, object, container and account servers and
 * their workers, memcached), with what their reaped children used: the store's share of a
 * benchmark that runs it on the same machine.
 */
export function swiftCpuSeconds(): number {
  let ticks = 0;
  for (const [pid, [user, system]] of procTable().ticks) {
    try {
      if (/swift-(proxy|object|container|account)|memcached/.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8'))) ticks += user + system;
    } catch {
      // exited meanwhile
    }
  }
  return ticks / 100;
}
