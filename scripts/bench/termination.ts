/**
 * `npm run bench:termination`: how long from "you will be stopped" to "safe to exit"?
 *
 * 1. In process (the real agent, file store): a drain request -> `safe_to_exit` with nothing
 *    pending, with an empty local dir and with 500 stored outputs on disk (the drain's rescan
 *    reads every index); an AWS spot notice from a local IMDS -> `safe_to_exit` (includes polling).
 * 2. The built CLI as a child process: SIGTERM -> process exit with nothing pending, and with
 *    N MB pending (the store is down while the outputs are committed, up just before SIGTERM).
 * 3. The built CLI with N small outputs pending (`--watched N`, default 3000): a drain asked for
 *    by an HTTP long-poll (`GET /v1/status?drain=true&wait=safe_to_exit`, what the preStop hook
 *    does) against one asked for by a gRPC Drain stream read to its end (an operator's tool
 *    watching progress), alternating: time to safe_to_exit and the agent's CPU.
 *
 * Usage: node dist/scripts/bench/termination.js [--reps N] [--mb 100,400] [--watched 3000] [--only watched]
 * (3 repetitions of the cases with data pending, or N with `--only watched`)
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
import { ShuffleAgentClient } from '../../agent/serve/client.js';
import { freePort } from './net.js';
import { treeCpuSeconds } from './proc-stats.js';
import { median } from './stats.js';
import { SparkLikeExecutor } from '../../test/kit/spark-writer.js';

const args = process.argv.slice(2);
const REPS = Number(args[args.indexOf('--reps') + 1] ?? 10) || 10;
const PENDING_MB = (args.includes('--mb') ? (args[args.indexOf('--mb') + 1] as string) : '100,400').split(',').map(Number);
const WATCHED = args.includes('--watched') ? Number(args[args.indexOf('--watched') + 1]) : 3000;
const ONLY_WATCHED = args.includes('--only') && args[args.indexOf('--only') + 1] === 'watched';
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
  pid: number;
  /** The agent's HTTP address, once it has logged it. */
  readonly url: string;
}

function runCli(cliArgs: string[]): Child {
  const child = spawn(process.execPath, [CLI, 'run', ...cliArgs], { stdio: ['ignore', 'pipe', 'inherit'] });
  let readyResolve!: () => void;
  let httpUrl = '';
  let pendingResolve!: (n: number) => void;
  const ready = new Promise<void>((r) => (readyResolve = r));
  const pending = new Promise<number>((r) => (pendingResolve = r));
  createInterface({ input: child.stdout }).on('line', (line) => {
    try {
      const l = JSON.parse(line) as { msg?: string; pendingBytes?: number; http?: { host: string; port: number } };
      if (l.msg === 'http listening' && l.http) httpUrl = `http://${l.http.host}:${l.http.port}`;
      if (l.msg === 'initial scan done') readyResolve();
      if (l.msg === 'drain started') pendingResolve(l.pendingBytes ?? 0);
    } catch {
      // not a log line
    }
  });
  return { exit: new Promise((r) => child.on('exit', (code) => r({ code, at: performance.now() }))), ready, kill: (s) => child.kill(s), pending, pid: child.pid as number, get url() { return httpUrl; } };
}

/**
 * `count` outputs of 8 partitions of 512 B pending (the store down while they are committed, up
 * once the agent has them all), then a drain: asked for by one HTTP long-poll, or by a gRPC Drain
 * stream read to its end. Time to safe_to_exit, and the agent's CPU from the request to then.
 */
async function drainOf(count: number, how: 'http' | 'grpc'): Promise<{ ms: number; cpu: number; messages: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-watched-'));
  const storeRoot = join(dir, 'store');
  await writeFile(storeRoot, 'down');
  const executor = new SparkLikeExecutor([join(dir, 'local')]);
  for (let i = 0; i < count; i++) await executor.commit({ shuffleId: i % 4, mapId: i, partitions: Array.from({ length: 8 }, () => 512) });
  const port = await freePort();
  const child = runCli(['--local-dirs', join(dir, 'local'), '--store', `file:${storeRoot}`, '--http-listen', '127.0.0.1:0', '--grpc-listen', `127.0.0.1:${port}`, '--termination-sources', '', '--app-id', 'bench-app']);
  try {
    await child.ready;
    if (!child.url) throw new Error('the agent logged no http address');
    await rm(storeRoot, { force: true });
    // A retry may create it first.
    await mkdir(storeRoot, { recursive: true });
    const cpu0 = treeCpuSeconds(child.pid);
    const t0 = performance.now();
    let messages = 0;
    if (how === 'http') {
      const res = await fetch(`${child.url}/v1/status?drain=true&wait=safe_to_exit&timeout=600`);
      if (res.status !== 200) throw new Error(`long-poll answered ${res.status}`);
      messages = 1;
    } else {
      const client = new ShuffleAgentClient({ target: `127.0.0.1:${port}` });
      try {
        for await (const p of client.drain('bench')) {
          messages++;
          if (p.done) break;
        }
      } finally {
        client.close();
      }
    }
    const ms = performance.now() - t0;
    return { ms, cpu: treeCpuSeconds(child.pid) - cpu0, messages };
  } finally {
    child.kill('SIGINT');
    await child.exit;
    await rm(dir, { recursive: true, force: true });
  }
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

async function watchedDrains(): Promise<void> {
  const reps = ONLY_WATCHED ? REPS : Math.min(REPS, 3);
  const runs: Record<'http' | 'grpc', Array<{ ms: number; cpu: number; messages: number }>> = { http: [], grpc: [] };
  for (let r = 0; r < reps; r++) {
    for (const how of r % 2 ? (['grpc', 'http'] as const) : (['http', 'grpc'] as const)) runs[how].push(await drainOf(WATCHED, how));
  }
  for (const how of ['http', 'grpc'] as const) {
    const rs = runs[how];
    console.log(`- ${WATCHED} small outputs pending (file store), drain asked by ${how === 'http' ? 'an HTTP long-poll' : 'a gRPC Drain stream read to its end'}: ${stats(rs.map((x) => x.ms))}; agent CPU median ${median(rs.map((x) => x.cpu)).toFixed(2)} s (${rs.map((x) => x.cpu.toFixed(2)).join(', ')}); progress messages ${rs.map((x) => x.messages).join(', ')}`);
  }
}

async function main(): Promise<void> {
  if (ONLY_WATCHED) {
    await watchedDrains();
    return;
  }
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
  await watchedDrains();
}

await main();
