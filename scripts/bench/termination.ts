/**
 * `npm run bench:termination`: how long from "you will be stopped" to "safe to exit"?
 *
 * 1. In process (the real agent, file store): a drain request -> `safe_to_exit` with nothing
 *    pending, with an empty local dir and with 500 stored outputs on disk (the drain's rescan
 *    reads every index); an AWS spot notice from a local IMDS -> `safe_to_exit` (includes polling).
 * 2. The built CLI as a child process: SIGTERM -> process exit with nothing pending, and with
 *    N MB pending (the store is down while the outputs are committed, up just before SIGTERM).
 *
 * Usage: node dist/scripts/bench/termination.js [--reps N] [--mb 100,400]
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { performance } from 'node:perf_hooks';
import { resolveOptions } from '../../agent/config/option-table.js';
import { RUN_OPTIONS, type RunConfig } from '../../agent/config/run-options.js';
import { silentLogger } from '../../agent/observability/logger.js';
import { startAgent } from '../../agent/main.js';
import { SparkLikeExecutor } from '../../test/kit/spark-writer.js';

const args = process.argv.slice(2);
const REPS = Number(args[args.indexOf('--reps') + 1] ?? 10) || 10;
const PENDING_MB = (args.includes('--mb') ? (args[args.indexOf('--mb') + 1] as string) : '100,400').split(',').map(Number);
const CLI = resolve('dist/agent/shuffle-agent.cjs');
const MiB = 1024 * 1024;

function stats(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number): number => s[Math.min(s.length - 1, Math.floor(p * s.length))] as number;
  return `median ${q(0.5).toFixed(1)} ms, p90 ${q(0.9).toFixed(1)} ms, max ${(s.at(-1) as number).toFixed(1)} ms (n=${s.length})`;
}

function config(dir: string, extra: string[] = []): RunConfig {
  const { config: raw } = resolveOptions(RUN_OPTIONS, ['--local-dirs', join(dir, 'local'), '--store', `file:${join(dir, 'store')}`, '--http-listen', '127.0.0.1:0', ...extra], {});
  return { ...raw, appId: 'bench-app' };
}

async function commit(dir: string, count: number, bytes: number): Promise<void> {
  const executor = new SparkLikeExecutor([join(dir, 'local')]);
  for (let i = 0; i < count; i++) await executor.commit({ shuffleId: i % 4, mapId: i, partitions: Array.from({ length: 8 }, () => Math.floor(bytes / 8)) });
}

/** Drain request -> safe_to_exit, in process. */
async function drainToSafe(storedOutputs: number): Promise<number[]> {
  const times: number[] = [];
  for (let r = 0; r < REPS; r++) {
    const dir = await mkdtemp(join(tmpdir(), 'bench-term-'));
    await commit(dir, storedOutputs, 4096);
    const agent = await startAgent(config(dir, ['--termination-sources', '']), silentLogger());
    await agent.writeback.whenIdle(); // everything stored: nothing pending at the notice
    const t0 = performance.now();
    const safe = agent.lifecycle.waitForState('safe_to_exit');
    agent.lifecycle.requestDrain('http');
    await safe;
    times.push(performance.now() - t0);
    await agent.close();
    await rm(dir, { recursive: true, force: true });
  }
  return times;
}

/** AWS spot notice published on a local IMDS -> safe_to_exit, with the given poll interval. */
async function awsNoticeToSafe(pollSeconds: number): Promise<number[]> {
  const times: number[] = [];
  let published = false;
  const imds = createServer((req, res) => {
    if (req.method === 'PUT') return void res.end('token');
    if (req.url === '/latest/meta-data/spot/instance-action' && published) {
      return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ action: 'terminate', time: new Date(Date.now() + 120_000).toISOString() }));
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => imds.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(imds.address() as AddressInfo).port}`;
  for (let r = 0; r < REPS; r++) {
    published = false;
    const dir = await mkdtemp(join(tmpdir(), 'bench-aws-'));
    const agent = await startAgent(config(dir, ['--termination-sources', 'aws', '--aws-metadata-endpoint', url, '--notice-poll-interval', String(pollSeconds)]), silentLogger());
    const safe = agent.lifecycle.waitForState('safe_to_exit');
    // Publish at a random point of the polling cycle.
    await new Promise((res) => setTimeout(res, Math.random() * pollSeconds * 1000));
    const t0 = performance.now();
    published = true;
    await safe;
    times.push(performance.now() - t0);
    await agent.close();
    await rm(dir, { recursive: true, force: true });
  }
  imds.closeAllConnections();
  imds.close();
  return times;
}

interface Child {
  exit: Promise<{ code: number | null; at: number }>;
  ready: Promise<void>;
  kill: (s: NodeJS.Signals) => void;
  pending: Promise<number>;
}

function runCli(cliArgs: string[]): Child {
  const child = spawn(process.execPath, [CLI, 'run', ...cliArgs], { stdio: ['ignore', 'pipe', 'inherit'] });
  let readyResolve!: () => void;
  let pendingResolve!: (n: number) => void;
  const ready = new Promise<void>((r) => (readyResolve = r));
  const pending = new Promise<number>((r) => (pendingResolve = r));
  createInterface({ input: child.stdout }).on('line', (line) => {
    try {
      const l = JSON.parse(line) as { msg?: string; pendingBytes?: number };
      if (l.msg === 'initial scan done') readyResolve();
      if (l.msg === 'drain started') pendingResolve(l.pendingBytes ?? 0);
    } catch {
      // not a log line
    }
  });
  return { exit: new Promise((r) => child.on('exit', (code) => r({ code, at: performance.now() }))), ready, kill: (s) => child.kill(s), pending };
}

async function sigtermToExit(pendingMb: number): Promise<{ times: number[]; codes: number[]; pendingBytes: number[] }> {
  const times: number[] = [];
  const codes: number[] = [];
  const pendingBytes: number[] = [];
  const reps = pendingMb === 0 ? REPS : Math.min(REPS, 3);
  for (let r = 0; r < reps; r++) {
    const dir = await mkdtemp(join(tmpdir(), 'bench-sig-'));
    const storeRoot = join(dir, 'store');
    if (pendingMb > 0) {
      await writeFile(storeRoot, 'down'); // the store is down while the backlog builds
      await commit(dir, pendingMb / 8, 8 * MiB);
    }
    const child = runCli(['--local-dirs', join(dir, 'local'), '--store', `file:${storeRoot}`, '--http-listen', '127.0.0.1:0', '--drain-timeout', '60', '--app-id', 'bench-app']);
    await child.ready;
    if (pendingMb > 0) {
      await rm(storeRoot, { force: true });
      await mkdir(storeRoot);
    }
    const t0 = performance.now();
    child.kill('SIGTERM');
    const { code, at } = await child.exit;
    times.push(at - t0);
    codes.push(code ?? -1);
    pendingBytes.push(await Promise.race([child.pending, Promise.resolve(-1)]));
    await rm(dir, { recursive: true, force: true });
  }
  return { times, codes, pendingBytes };
}

async function main(): Promise<void> {
  console.log(`node ${process.version}, ${REPS} repetitions (3 for the runs with data pending)`);
  console.log(`- drain request -> safe_to_exit, nothing pending, empty local dir: ${stats(await drainToSafe(0))}`);
  console.log(`- drain request -> safe_to_exit, nothing pending, 500 stored outputs on disk (rescan): ${stats(await drainToSafe(500))}`);
  console.log(`- AWS notice published -> safe_to_exit, --notice-poll-interval 0.1: ${stats(await awsNoticeToSafe(0.1))}`);
  console.log(`- AWS notice published -> safe_to_exit, --notice-poll-interval 2: ${stats(await awsNoticeToSafe(2))}`);
  const idle = await sigtermToExit(0);
  console.log(`- SIGTERM -> process exit (built CLI), nothing pending: ${stats(idle.times)}; exit codes ${[...new Set(idle.codes)].join(',')}`);
  for (const mb of PENDING_MB) {
    const r = await sigtermToExit(mb);
    const mbPerS = r.times.map((t, i) => ((r.pendingBytes[i] as number) / MiB / (t / 1000)).toFixed(0));
    console.log(`- SIGTERM -> process exit (built CLI), ${mb} MiB pending (file store, fsync per object): ${stats(r.times)}; exit codes ${[...new Set(r.codes)].join(',')}; ${mbPerS.join(', ')} MiB/s`);
  }
}

await main();
