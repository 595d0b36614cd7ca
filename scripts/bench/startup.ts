/**
 * bench:startup — what the agent CLI costs before it does any work: CPU seconds, wall and peak
 * RSS from `shuffle-agent run`'s spawn to its first scan done (the "initial scan done" log line),
 * on an empty local dir, with an S3 store (as on a node; nothing listens at its loopback endpoint:
 * start-up contacts no store before the first scan) or `--store file`. On a short job this fixed cost is a large share of
 * the agent's CPU per GiB (issue 19), so it is measured on its own.
 *
 *   npm run bench:startup [-- --runs 7 --store s3|file --compile-cache DIR]
 *   --compile-cache DIR   set SHUFFLE_AGENT_COMPILE_CACHE=DIR (one warm-up run fills it first)
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { flag } from './args.js';
import { procStats } from './proc-stats.js';
import { AGENT_CLI } from '../../test/kit/repo-root.js';

const runs = Number(flag('runs', '7'));
const compileCache = flag('compile-cache', '');
const storeKind = flag('store', 's3');

interface Sample {
  cpuSeconds: number;
  wallSeconds: number;
  peakRssMiB: number;
}

async function once(): Promise<Sample> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-startup-'));
  const env: NodeJS.ProcessEnv = { ...process.env, AWS_ACCESS_KEY_ID: 'x', AWS_SECRET_ACCESS_KEY: 'x', ...(compileCache ? { SHUFFLE_AGENT_COMPILE_CACHE: compileCache } : {}) };
  const started = performance.now();
  const child = spawn(process.execPath, [AGENT_CLI, 'run', '--http-listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--local-dirs', join(dir, 'local'), ...(storeKind === 'file' ? ['--store', `file://${join(dir, 'store')}`] : ['--store', 's3://bench-startup/x', '--s3-endpoint', 'http://127.0.0.1:9', '--s3-force-path-style'])], {
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

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

async function main(): Promise<void> {
  console.log(`node ${process.version}; ${storeKind} store; ${runs} runs${compileCache ? `; compile cache ${compileCache}` : ''}; load ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  if (compileCache) await once();
  const samples: Sample[] = [];
  for (let i = 0; i < runs; i++) {
    const s = await once();
    samples.push(s);
    console.log(`run ${i + 1}: cpu ${s.cpuSeconds.toFixed(2)} s, wall ${s.wallSeconds.toFixed(2)} s, peak RSS ${s.peakRssMiB.toFixed(0)} MiB`);
  }
  console.log(`median: cpu ${median(samples.map((s) => s.cpuSeconds)).toFixed(2)} s, wall ${median(samples.map((s) => s.wallSeconds)).toFixed(2)} s, peak RSS ${median(samples.map((s) => s.peakRssMiB)).toFixed(0)} MiB`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
