/**
 * bench:watch — how fast the agent discovers what is already on disk, and how far behind a
 * steady stream of commits it persists them.
 *
 * 1. Discovery: 100,000 files (50,000 map outputs) laid out as Spark does; the agent (built CLI,
 *    child process) starts on them; time to "initial scan done" and peak RSS. Baseline on the
 *    same tree in the same run: `find -printf` (one walk with a stat per file, the floor).
 * 2. Lag: outputs committed the Spark way at a fixed rate; commit-to-persisted lag per output,
 *    from the commit (data rename) to the agent's "output persisted" log line.
 *
 * Usage: npm run bench:watch [-- --files 100000 --rate 200 --seconds 20]
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeIndex } from '../../agent/spark/index-file.js';
import { localPlacement } from '../../agent/spark/java-hash.js';
import { shuffleFileName } from '../../agent/spark/file-names.js';
import { AgentProcess } from '../../test/kit/agent-process.js';
import { SparkLikeExecutor } from '../../test/kit/spark-writer.js';
import { until } from '../../test/kit/wait.js';
import { percentile, procStats } from './proc-stats.js';
import { flag } from './args.js';

interface Agent {
  stop: () => Promise<void>;
  waitFor: (msg: string) => Promise<Record<string, unknown>>;
  onLine: (f: (l: Record<string, unknown>) => void) => void;
  peak: () => { peakRssMiB: number; cpuSeconds: number };
}

/** The built agent (the kit's launcher) on `local`, its peak RSS sampled every 100 ms. */
async function startAgent(local: string, store: string, logLevel: string): Promise<Agent> {
  // A discovery of a large tree takes seconds on a busy machine: the start may take minutes.
  const agent = await AgentProcess.start(['--local-dirs', local, '--store', `file:${store}`, '--log-level', logLevel, '--app-id', 'bench'], {
    inheritStderr: true,
    startTimeoutMs: 600_000,
  });
  let peak = { peakRssMiB: 0, cpuSeconds: 0 };
  const sample = (): void => {
    const s = procStats(agent.pid);
    if (s) peak = { peakRssMiB: Math.max(peak.peakRssMiB, s.peakRssMiB), cpuSeconds: s.cpuSeconds };
  };
  const sampler = setInterval(sample, 100);
  return {
    onLine: (f) => agent.onLine(f),
    waitFor: (msg) => agent.waitForLog((l) => l.msg === msg, 600_000),
    peak: () => {
      sample();
      return peak;
    },
    stop: async () => {
      clearInterval(sampler);
      await agent.stop('SIGKILL');
    },
  };
}

async function makeTree(root: string, files: number): Promise<void> {
  const blockmgr = join(root, 'blockmgr-00000000-0000-0000-0000-000000000001');
  const dirs = new Set<string>();
  const outputs = files / 2;
  const index = encodeIndex([0, 512, 1024]);
  const data = Buffer.alloc(1024, 7);
  for (let m = 0; m < outputs; m++) {
    for (const [type, bytes] of [['data', data], ['index', index]] as const) {
      const name = shuffleFileName(m % 50, String(m), type);
      const dir = join(blockmgr, localPlacement(name, 1).subDir);
      if (!dirs.has(dir)) {
        await mkdir(dir, { recursive: true });
        dirs.add(dir);
      }
      await writeFile(join(dir, name), bytes);
    }
  }
}

async function discovery(files: number): Promise<void> {
  const base = await mkdtemp(join(tmpdir(), 'ssa-bench-watch-'));
  try {
    const local = join(base, 'local');
    process.stdout.write(`laying out ${files} files... `);
    await makeTree(local, files);
    process.stdout.write('done\n');
    execFileSync('sync');

    let t0 = process.hrtime.bigint();
    const found = execFileSync('find', [local, '-type', 'f', '-printf', '%s %p\n'], { maxBuffer: 1 << 30 }).toString().split('\n').length - 1;
    const findMs = Number(process.hrtime.bigint() - t0) / 1e6;

    t0 = process.hrtime.bigint();
    // Write-back to a store on the same disk runs concurrently, as it would in production.
    const agent = await startAgent(local, join(base, 'store'), 'info');
    const done = await agent.waitFor('initial scan done');
    const agentMs = Number(process.hrtime.bigint() - t0) / 1e6;
    const stats = agent.peak();
    await agent.stop();
    console.log(`\n## discovery of ${files} existing files (${found} found by find)`);
    console.log(`find -printf (baseline walk):   ${findMs.toFixed(0)} ms`);
    console.log(`agent start -> scan done:       ${agentMs.toFixed(0)} ms  (${String(done.outputs)} outputs)  ratio ${(agentMs / findMs).toFixed(1)}x find`);
    console.log(`agent peak RSS: ${stats.peakRssMiB.toFixed(0)} MiB, CPU ${stats.cpuSeconds.toFixed(1)} s`);
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

async function lag(rate: number, seconds: number): Promise<void> {
  const base = await mkdtemp(join(tmpdir(), 'ssa-bench-lag-'));
  try {
    const local = join(base, 'local');
    await mkdir(local, { recursive: true });
    const agent = await startAgent(local, join(base, 'store'), 'debug');
    await agent.waitFor('initial scan done');
    const committedAt = new Map<string, number>();
    const lags: number[] = [];
    agent.onLine((l) => {
      if (l.msg !== 'output persisted') return;
      const t = committedAt.get(String(l.output));
      if (t !== undefined) lags.push(Date.parse(String(l.time)) - t);
    });
    const exec = new SparkLikeExecutor([local]);
    const total = rate * seconds;
    const start = Date.now();
    // Four lanes, like four task slots of an executor: one Spark-like commit costs several
    // file-system calls, and a single sequential writer cannot keep 200/s on a slow disk.
    const lanes = 4;
    await Promise.all(
      Array.from({ length: lanes }, async (_, lane) => {
        for (let i = lane; i < total; i += lanes) {
          const due = start + (i * 1000) / rate;
          const wait = due - Date.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          const mapId = String(i);
          await exec.commit({ shuffleId: 0, mapId, partitions: [4096, 4096, 8192] });
          committedAt.set(`bench/0/${mapId}`, Date.now());
        }
      }),
    );
    const sendSeconds = (Date.now() - start) / 1000;
    // Bounded: what is not persisted by then counts as missing in the line below.
    await until(() => lags.length >= total, 'every output persisted', 30_000, 50).catch(() => undefined);
    const stats = agent.peak();
    await agent.stop();
    lags.sort((a, b) => a - b);
    console.log(`\n## commit-to-persisted lag at ${rate} outputs/s for ${seconds} s (${total} outputs, achieved ${(total / sendSeconds).toFixed(0)}/s)`);
    console.log(`persisted ${lags.length}/${total}; lag p50 ${percentile(lags, 50)} ms, p99 ${percentile(lags, 99)} ms, max ${lags[lags.length - 1]} ms (goal: p99 < 1000 ms)`);
    console.log(`agent peak RSS: ${stats.peakRssMiB.toFixed(0)} MiB, CPU ${stats.cpuSeconds.toFixed(1)} s (${((stats.cpuSeconds / sendSeconds) * 100).toFixed(0)}% of a core)`);
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

await discovery(Number(flag('files', '100000')));
await lag(Number(flag('rate', '200')), Number(flag('seconds', '20')));
