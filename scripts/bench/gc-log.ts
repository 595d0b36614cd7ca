/**
 * The live heap of JVMs, from their unified GC logs (`-Xlog:gc:file=<dir>/gc-%p.log`): what each
 * collection left (`Pause Young ... 300M->42M(1024M)`). Spark's JVMHeapMemory metric counts garbage
 * not yet collected, so its peak says more about when G1 ran than about what a task held; the
 * largest heap after a collection is what the JVM could not free.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** How far each GC log had been written: where an action's lines start. */
export type GcMarks = Map<string, number>;

/**
 * A JVM option that makes each JVM log its collections and the classes it loads into `dir` (one
 * file per process).
 */
export function jvmLogOption(dir: string): string {
  return `-Xlog:gc,class+load:file=${join(dir, 'gc-%p.log')}`;
}

export function gcMarks(dir: string): GcMarks {
  const marks: GcMarks = new Map();
  for (const f of logs(dir)) marks.set(f, statSync(f).size);
  return marks;
}

export interface GcPeaks {
  /** Largest heap after a collection, over every JVM's collections since the marks, MiB. */
  liveMiB: number;
  /** Largest heap before a collection, MiB. */
  usedMiB: number;
  collections: number;
  /** Classes the JVMs loaded since the marks (a cold code path's one-time cost). */
  classesLoaded: number;
}

/** The collections logged since `marks` (a JVM started since counts from its first line). */
export function gcPeaksSince(dir: string, marks: GcMarks): GcPeaks {
  const peaks: GcPeaks = { liveMiB: 0, usedMiB: 0, collections: 0, classesLoaded: 0 };
  for (const f of logs(dir)) {
    const text = readFileSync(f).subarray(marks.get(f) ?? 0).toString('utf8');
    peaks.classesLoaded += text.match(/\[class,load\s*\]/g)?.length ?? 0;
    for (const m of text.matchAll(/\[gc\s*\].* (\d+)([KMG])->(\d+)([KMG])\(\d+[KMG]\)/g)) {
      peaks.collections++;
      peaks.usedMiB = Math.max(peaks.usedMiB, mib(m[1], m[2]));
      peaks.liveMiB = Math.max(peaks.liveMiB, mib(m[3], m[4]));
    }
  }
  return peaks;
}

function mib(n: string | undefined, unit: string | undefined): number {
  const scale = unit === 'K' ? 1 / 1024 : unit === 'G' ? 1024 : 1;
  return Number(n) * scale;
}

function logs(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((n) => /^gc-\d+\.log$/.test(n)).map((n) => join(dir, n));
}
