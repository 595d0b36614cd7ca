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
