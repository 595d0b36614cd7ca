/**
 * bench:startup — what the agent CLI costs before it does any work: CPU seconds, wall and peak
 * RSS from `shuffle-agent run`'s spawn to its first scan done (the "initial scan done" log line),
 * on an empty local dir, with an S3 store (as on a node; nothing listens at its loopback endpoint:
 * start-up contacts no store before the first scan) or `--store file`. On a short job this fixed cost is a large share of
 * the agent's CPU per GiB (issue 19), so it is measured on its own.
 *
 *   npm run bench:startup [-- --runs 7 --store s3|file --compile-cache DIR --cli A,B --node-args "..."]
 *   --compile-cache DIR   set NODE_COMPILE_CACHE=DIR (Node's compile cache; one warm-up start per CLI fills it first)
 *   --cli A,B             the CLI files to start (default: the bundle and tsc's per-module build), taken in
 *                         turn within each run, so that a shared machine's load falls on both alike
 *   --node-args "..."     Node flags for every start (e.g. --enable-source-maps)
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { createInterface } from 'node:readline';
import { flag } from './args.js';
import { procStats } from './proc-stats.js';
import { AGENT_CLI, AGENT_MODULES_CLI, ROOT } from '../../test/kit/repo-root.js';
import { median } from './stats.js';

const runs = Number(flag('runs', '7'));
const compileCache = flag('compile-cache', '');
const storeKind = flag('store', 's3');
const clis = flag('cli', `${AGENT_CLI},${AGENT_MODULES_CLI}`).split(',').filter(Boolean);
const nodeArgs = flag('node-args', '').split(' ').filter(Boolean);

interface Sample {
  cpuSeconds: number;
  wallSeconds: number;
  peakRssMiB: number;
}

async function once(cli: string): Promise<Sample> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-startup-'));
  const env: NodeJS.ProcessEnv = { ...process.env, AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'x', ...(compileCache ? { NODE_COMPILE_CACHE: compileCache } : {}) };
  const started = performance.now();
  const child = spawn(process.execPath, [...nodeArgs, cli, 'run', '--http-listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--local-dirs', join(dir, 'local'), ...(storeKind === 'file' ? ['--store', `file://${join(dir, 'store')}`] : ['--store', 's3://bench-startup/x', '--s3-endpoint', 'http://127.0.0.1:9', '--s3-force-path-style'])], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env,
  });
  const exited = new Promise((r) => child.once('exit', r));
  try {
    await new Promise<void>((resolveReady, reject) => {
      child.once('exit', (code) => reject(new Error(`agent exited (${code}) before its scan was done`)));
      createInterface({ input: child.stdout! }).on('line', (text) => {
        if (text.includes('"initial scan done"')) resolveReady();
      });
    });
    const wallSeconds = (performance.now() - started) / 1000;
    const stats = procStats(child.pid as number);
    if (!stats) throw new Error('agent gone before its CPU was read');
    return { cpuSeconds: stats.cpuSeconds, wallSeconds, peakRssMiB: stats.peakRssMiB };
  } finally {
    child.kill('SIGKILL');
    await exited;
    await rm(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  console.log(`node ${process.version}; ${storeKind} store; ${runs} runs${compileCache ? `; compile cache ${compileCache}` : ''}${nodeArgs.length ? `; node ${nodeArgs.join(' ')}` : ''}; load ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  if (compileCache) for (const cli of clis) await once(cli);
  const samples = new Map<string, Sample[]>(clis.map((c) => [c, []]));
  for (let i = 0; i < runs; i++) {
    for (const cli of clis) {
      const s = await once(cli);
      samples.get(cli)?.push(s);
      console.log(`run ${i + 1} ${relative(ROOT, cli)}: cpu ${s.cpuSeconds.toFixed(2)} s, wall ${s.wallSeconds.toFixed(2)} s, peak RSS ${s.peakRssMiB.toFixed(0)} MiB`);
    }
  }
  for (const [cli, xs] of samples) {
    console.log(`median ${relative(ROOT, cli)}: cpu ${median(xs.map((s) => s.cpuSeconds)).toFixed(2)} s, wall ${median(xs.map((s) => s.wallSeconds)).toFixed(2)} s, peak RSS ${median(xs.map((s) => s.peakRssMiB)).toFixed(0)} MiB`);
  }
  console.log(`load at the end ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
