/**
 * bench:writeback — Spark-like local dirs of several mixes of output sizes copied to the same
 * Swift s3api server by the agent (WritebackQueue + S3Store, in a child process), by Debian's
 * `rclone copy` (`--transfers 4`, the same concurrency budget, and faster settings), and by a
 * raw parallel PUT loop (the store's ceiling, see writeback-raw.ts), interleaved round by round,
 * each run to a fresh prefix. Prints throughput, CPU seconds per GiB and peak RSS per tool, the
 * agent/rclone ratio of each round, and the agent as a fraction of the ceiling, with the Swift
 * processes' CPU per GiB of each run: on a small machine the store's CPU and the tool's share the
 * same cores, so a tool's speed there also depends on the CPU it leaves the store.
 *
 *   npm run bench:writeback [-- --mix small,mid,large,classic,spark,random,tiny,huge --rounds 3 --tools agent,agent-cli,rclone,rclone-t16,ceiling]
 *   --agent-node-args "--cpu-prof --cpu-prof-dir DIR"   Node flags for the agent-cli process (profiling)
 *   --agent-args "..."   further `shuffle-agent run` flags for the agent-cli tools
 *   --latency MS   every store answer held back MS ms (a store elsewhere): by default inside Swift, by
 *                  a second proxy server with a filter that waits before answering (scripts/swift-s3.sh
 *                  latency MS), which costs no CPU here; its CPU counts as the store's
 *   --latency-via relay   instead by an HTTP relay in this process (bench:spark-read's FaultProxy),
 *                  which copies every byte once more on the same cores (its CPU is printed apart)
 *   env: BENCH_ROUNDS, BENCH_AGENT_CONCURRENCY (4), BENCH_SIZE_MIB (1024, the classic mix)
 *
 * Needs root on Debian for the first run (installs swift, memcached, rclone when missing).
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { S3Store } from '../../agent/store/s3/s3-store.js';
import { encodeIndex } from '../../agent/spark/index-file.js';
import { localPlacement } from '../../agent/spark/java-hash.js';
import { shuffleFileName } from '../../agent/spark/file-names.js';
import { OWNER_OBJECT } from '../../agent/tenancy/app-owners.js';
import { flag } from './args.js';
import { procStats, swiftCpuSeconds } from './proc-stats.js';
import { AGENT_CLI } from '../../test/kit/spark-harness.js';
import { FaultProxy } from '../../test/kit/fault-proxy.js';
import { swiftScript } from '../../test/kit/s3-servers.js';
import { median } from './stats.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const here = dirname(fileURLToPath(import.meta.url));
// dist/scripts/bench -> repository root
const root = resolve(here, '..', '..', '..');
const outDir = join(root, 'bench', 'out');


const sizeMiB = Number(process.env.BENCH_SIZE_MIB ?? 1024);
const rounds = Number(flag('rounds', process.env.BENCH_ROUNDS ?? '3'));
// Outputs the agent writes at once (its --upload-concurrency); rclone's baseline gets --transfers 4.
const agentConcurrency = Number(process.env.BENCH_AGENT_CONCURRENCY ?? 4);
const mixes = flag('mix', 'small,mid,large,classic').split(',');
// Seed of the random, tiny and huge mixes (the mixes the agent was not tuned on).
const seed = Number(flag('seed', process.env.BENCH_SEED ?? '19'));
// Node flags for the agent-cli tool's process, e.g. "--cpu-prof --cpu-prof-dir bench/out/prof".
const agentNodeArgs = flag('agent-node-args', '').split(' ').filter(Boolean);
// Further `shuffle-agent run` flags for the agent-cli tools, e.g. "--s3-max-concurrent-requests 16".
const agentArgs = flag('agent-args', '').split(' ').filter(Boolean);
const tools = flag('tools', 'agent,rclone,rclone-t16,ceiling').split(',') as Tool[];
// Milliseconds every answer of the store is held back: a store elsewhere, whose first byte takes
// tens of ms, rather than one on loopback. `swift`: a proxy server of Swift's own waits before it
// answers; `relay`: an HTTP relay in this process does (it also copies every body once more).
const latencyMs = Number(flag('latency', '0'));
const latencyVia = flag('latency-via', 'swift');
if (latencyVia !== 'swift' && latencyVia !== 'relay') throw new Error(`--latency-via: swift or relay, not ${latencyVia}`);
const credentials = { accessKeyId: 'test:tester', secretAccessKey: 'testing' };
const APP = 'app-bench';
const BUCKET = 'bench-writeback';

/**
 * - agent: the agent's write-back with its defaults (BENCH_AGENT_CONCURRENCY outputs at once);
 * - agent-cN: the same with N outputs at once;
 * - agent-cli: the built CLI (`shuffle-agent run`, BENCH_AGENT_CONCURRENCY outputs at once), timed
 *   from its spawn to the last output persisted: start-up, the first scan, then the outputs appear
 *   (the data set's blockmgr-* directory is renamed into its local dir) and are written back;
 * - agent-cli-cN: the same with `--upload-concurrency N`;
 * - agent-cli-defaults: the same with no write-back flag at all, as a user runs it (16 outputs and
 *   8 requests at once);
 * - rclone: `rclone copy --transfers 4` (the baseline: 4 files at once, like the agent's 4 outputs);
 * - rclone-t16: `--transfers 16 --s3-upload-concurrency 8`, rclone's faster settings here;
 * - ceiling: writeback-raw.ts, 16 unchecked PUTs at once.
 */
type Tool = 'agent' | 'agent-cli' | 'agent-cli-defaults' | 'rclone' | 'rclone-t16' | 'ceiling' | `agent-c${number}` | `agent-cli-c${number}`;

interface Measured {
  mix: string;
  tool: Tool;
  round: number;
  wallSeconds: number;
  cpuSeconds: number;
  maxRssMiB: number;
  objects: number;
  bytes: number;
  /** One-minute load average when the run started (the machine is shared). */
  load: number;
  /** Agent only: seconds from the first output queued to the queue idle (no process start-up). */
  transferSeconds?: number;
  /** Agent only: CPU seconds of that phase (what a running agent spends per byte). */
  transferCpuSeconds?: number;
  /** CPU seconds of the Swift processes during the run (they share the machine's cores with the tool). */
  storeCpuSeconds: number;
  /** With --latency-via relay: CPU seconds of this process during the run: the relay, and for the
   * agent-cli tools also the status polls (a few ms of the run's total). */
  proxyCpuSeconds?: number;
}

/** One tool's medians over a mix's rounds (peak RSS: the highest). */
interface ToolSummary {
  MiBps: number;
  cpuSecondsPerGiB: number;
  peakRssMiB: number;
  storeCpuSecondsPerGiB: number;
}

/** A deterministic generator (mulberry32), so that every machine makes the same sizes. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Partition lengths of each map output of a mix (an output of all zeros has no data file, as in Spark). */
function mixOutputs(mix: string): number[][] {
  const rnd = prng(12);
  const outputs: number[][] = [];
  const spread = (size: number, partitions: number): number[] => {
    const cuts = [0];
    for (let p = 1; p <= partitions; p++) cuts.push(Math.floor((size * p) / partitions));
    return cuts.slice(1).map((c, i) => c - (cuts[i] as number));
  };
  switch (mix) {
    case 'small':
      // A wide shuffle: 2500 outputs of 4 KiB to 384 KiB (log-uniform), 200–1000 partitions.
      for (let m = 0; m < 2500; m++) outputs.push(spread(Math.floor(4096 * Math.exp(rnd() * Math.log(96))), 200 + Math.floor(rnd() * 800)));
      return outputs;
    case 'mid':
      // 48 outputs of 1–12 partitions of up to 4 MB each; one in seven empty (index only).
      for (let m = 0; m < 48; m++) {
        const n = 1 + Math.floor(rnd() * 12);
        outputs.push(Array.from({ length: n }, () => (m % 7 === 6 ? 0 : Math.floor(rnd() * 4_000_000))));
      }
      return outputs;
    case 'large':
      // A few large outputs, where multipart matters: 200, 300 and 400 MiB, 200 partitions.
      return [200, 300, 400].map((s) => spread(s * MiB + 12_345, 200));
    case 'classic': {
      // The original data set: data files of 1–15 MiB plus one of 48 MiB in 16, 200 partitions.
      let bytes = 0;
      for (let m = 0; bytes < sizeMiB * MiB; m++) {
        const size = m % 16 === 15 ? 48 * MiB : (1 + ((m * 7919) % 15)) * MiB + ((m * 104_729) % 65_536);
        outputs.push(spread(size, 200));
        bytes += size + 201 * 8;
      }
      return outputs;
    }
    case 'random': {
      // Not tuned on (issue 19): BENCH_SEED picks 40–120 outputs, each of 1–2000 partitions and a
      // log-uniform size from 1 KiB to 96 MiB, one in ten empty (index only).
      const r = prng(seed);
      const n = 40 + Math.floor(r() * 81);
      for (let m = 0; m < n; m++) {
        const partitions = 1 + Math.floor(r() * 2000);
        outputs.push(r() < 0.1 ? new Array<number>(partitions).fill(0) : spread(Math.floor(1024 * Math.exp(r() * Math.log(96 * 1024))), partitions));
      }
      return outputs;
    }
    case 'tiny': {
      // Many small outputs: 3000 of 0–48 KiB (uniform), 50–400 partitions, seeded by BENCH_SEED.
      const r = prng(seed + 1);
      for (let m = 0; m < 3000; m++) outputs.push(spread(Math.floor(r() * 48 * 1024), 50 + Math.floor(r() * 350)));
      return outputs;
    }
    case 'spark': {
      // The shape of bench:spark-overhead's job (120 map outputs x 200 reducers, about 1.6 MiB each,
      // 196 MiB), so that its "real Spark vs synthetic" CPU per GiB compares only what real Spark
      // output adds (scratch files, renames, inotify events), not a different shape.
      for (let m = 0; m < 120; m++) outputs.push(spread(1_700_000 + Math.floor(rnd() * 20_000), 200));
      return outputs;
    }
    case 'huge': {
      // A few very large outputs: 1.2 and 0.8 GiB plus 3 of 1–5 MiB, 2000 partitions each.
      const r = prng(seed + 2);
      for (const s of [1229, 819]) outputs.push(spread(s * MiB + Math.floor(r() * MiB), 2000));
      for (let m = 0; m < 3; m++) outputs.push(spread(Math.floor((1 + r() * 4) * MiB), 2000));
      return outputs;
    }
    default:
      throw new RangeError(`unknown mix ${mix}: expected small, mid, large, classic, spark, random, tiny or huge`);
  }
}

/** One executor's `blockmgr-<uuid>/NN/` with the mix's outputs over 4 shuffles (made once, then reused). */
async function generate(mix: string): Promise<{ dir: string; files: number; bytes: number; outputs: number }> {
  const dataDir = join(outDir, `writeback-data-${mix}${['random', 'tiny', 'huge'].includes(mix) ? `-${seed}` : ''}`);
  const marker = join(dataDir, '.complete');
  const want = mix === 'classic' ? `${mix} ${sizeMiB}` : ['random', 'tiny', 'huge'].includes(mix) ? `${mix} ${seed}` : mix;
  if (existsSync(marker) && (await readFile(marker, 'utf8')) === want) {
    return { dir: dataDir, ...(JSON.parse(await readFile(join(dataDir, '.summary.json'), 'utf8')) as { files: number; bytes: number; outputs: number }) };
  }
  await rm(dataDir, { recursive: true, force: true });
  const bm = join(dataDir, `blockmgr-${randomUUID()}`);
  let bytes = 0;
  let files = 0;
  const outputs = mixOutputs(mix);
  for (const [m, partitions] of outputs.entries()) {
    const offsets = [0];
    for (const p of partitions) offsets.push((offsets[offsets.length - 1] as number) + p);
    const size = offsets[offsets.length - 1] as number;
    const bodies: Array<['data' | 'index', Buffer]> = [['index', encodeIndex(offsets)]];
    if (size > 0) bodies.unshift(['data', randomBytes(size)]);
    for (const [type, body] of bodies) {
      const name = shuffleFileName(m % 4, String(1000 + m), type);
      const dir = join(bm, localPlacement(name, 1).subDir);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, name), body);
      bytes += body.length;
      files++;
    }
  }
  const summary = { files, bytes, outputs: outputs.length };
  await writeFile(join(dataDir, '.summary.json'), JSON.stringify(summary));
  await writeFile(marker, want);
  return { dir: dataDir, ...summary };
}

/** Run a command under GNU time: wall, user+sys CPU and peak RSS of the process tree's largest process. */
async function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ stdout: string; wall: number; cpu: number; rssMiB: number }> {
  const out = join(outDir, `time-${process.pid}.txt`);
  const { stdout } = await run('/usr/bin/time', ['-f', '%e %U %S %M', '-o', out, cmd, ...args], { env, maxBuffer: 64 * MiB });
  const [wall, user, sys, rssKiB] = (await readFile(out, 'utf8')).trim().split('\n').pop()!.split(' ').map(Number) as [number, number, number, number];
  await rm(out, { force: true });
  return { stdout, wall, cpu: user + sys, rssMiB: rssKiB / 1024 };
}

/**
 * The built CLI from its spawn to the last output persisted, with its own CPU time and peak RSS
 * (from /proc just before it exits). The outputs appear once its first scan is done, as Spark's
 * would: not "found at start", so nothing is looked up in the store before it is sent.
 */
async function agentCli(dataset: { dir: string; outputs: number }, endpoint: string, prefix: string, concurrency: number | undefined): Promise<{ stdout: string; wall: number; cpu: number; rssMiB: number; transferSeconds: number; transferCpuSeconds: number }> {
  const local = await mkdtemp(join(outDir, 'agent-cli-local-'));
  const bm = (await readdir(dataset.dir)).find((d) => d.startsWith('blockmgr-')) as string;
  const started = performance.now();
  const child = spawn(process.execPath, [...agentNodeArgs, AGENT_CLI, 'run', '--http-listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--local-dirs', local, '--app-id', APP,
    '--store', `s3://${BUCKET}/${prefix}`, '--s3-endpoint', endpoint, '--s3-force-path-style', '--s3-checksums', 'when_required', ...(concurrency === undefined ? [] : ['--upload-concurrency', String(concurrency)]), ...agentArgs], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, AWS_ACCESS_KEY_ID: credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey },
  });
  const exited = new Promise((r) => child.once('exit', r));
  let moved = false;
  try {
    const url = await new Promise<string>((resolveReady, reject) => {
      let port = 0;
      child.once('exit', (code) => reject(new Error(`agent exited (${code}) before its scan was done`)));
      createInterface({ input: child.stdout! }).on('line', (text) => {
        const l = (() => {
          try {
            return JSON.parse(text) as { msg?: string; http?: { port?: number } };
          } catch {
            return {};
          }
        })();
        if (l.msg === 'http listening') port = l.http?.port ?? 0;
        if (l.msg === 'initial scan done') resolveReady(`http://127.0.0.1:${port}`);
      });
    });
    // From here on, the write-back phase: what bench:spark-overhead counts from the action's start.
    const phase = { at: performance.now(), cpu: procStats(child.pid as number)?.cpuSeconds ?? NaN };
    await rename(join(dataset.dir, bm), join(local, bm));
    moved = true;
    for (;;) {
      const s = (await (await fetch(`${url}/v1/status`)).json()) as { persistedOutputs: number; pendingOutputs: number };
      if (s.persistedOutputs >= dataset.outputs && s.pendingOutputs === 0) break;
      // Every 20 ms, and at most 200 times per run: a status document costs the agent 0.3 ms of
      // CPU when little is pending and 1.5-2 ms with thousands pending (it walks them), which on a
      // long run (tiny's 3000 outputs) would be the bench's cost, not the agent's; the end is then
      // known to within 0.5 % of the run.
      await new Promise((r) => setTimeout(r, Math.max(20, (performance.now() - phase.at) / 200)));
    }
    const now = performance.now();
    const stats = procStats(child.pid as number);
    const cpu = stats?.cpuSeconds ?? NaN;
    return { stdout: '', wall: (now - started) / 1000, cpu, rssMiB: stats?.peakRssMiB ?? NaN, transferSeconds: (now - phase.at) / 1000, transferCpuSeconds: cpu - phase.cpu };
  } finally {
    // SIGINT (nothing is pending: it exits at once, and a --cpu-prof is written); SIGKILL if not.
    child.kill('SIGINT');
    const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(killer);
    if (moved) await rename(join(local, bm), join(dataset.dir, bm));
    await rm(local, { recursive: true, force: true });
  }
}

function ensureRclone(): void {
  if (existsSync('/usr/bin/rclone')) return;
  const r = spawnSync('apt-get', ['install', '-y', '-q', '--no-install-recommends', 'rclone'], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (r.status !== 0) throw new Error('apt-get install rclone failed');
}

/** Delete keys, four DeleteObjects requests at once: Swift deletes one object at a time, so thousands take a while. */
async function removeAll(admin: S3Store, keys: string[]): Promise<void> {
  const batches: string[][] = [];
  for (let i = 0; i < keys.length; i += 500) batches.push(keys.slice(i, i + 500));
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      for (let b = batches.shift(); b; b = batches.shift()) await admin.deleteMany(b);
    }),
  );
}

async function main(): Promise<void> {
  if (!existsSync('/usr/bin/time')) throw new Error('GNU time (/usr/bin/time, Debian package "time") is needed to measure CPU and RSS');
  ensureRclone();
  const direct = await swiftScript('start');
  // The tools talk to the store with its latency (with --latency); counting and clean-up do not.
  const proxy = latencyMs > 0 && latencyVia === 'relay' ? await FaultProxy.start(direct) : undefined;
  if (proxy) proxy.delayMs = latencyMs;
  const slowSwift = latencyMs > 0 && latencyVia === 'swift' ? await swiftScript('latency', String(latencyMs)) : undefined;
  const endpoint = proxy?.endpoint ?? slowSwift ?? direct;
  const how = proxy ? `, each answer held back ${latencyMs} ms by a relay at ${endpoint} (in this process)` : slowSwift ? `, each answer held back ${latencyMs} ms by Swift's proxy server at ${endpoint}` : '';
  console.log(`swift s3api at ${direct}${how}; mixes ${mixes.join(', ')}; tools ${tools.join(', ')}; ${rounds} rounds`);

  const client = new S3Client({ endpoint: direct, region: 'us-east-1', forcePathStyle: true, credentials, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
  await client.send(new CreateBucketCommand({ Bucket: BUCKET })).catch((err: { name?: string }) => {
    if (err.name !== 'BucketAlreadyOwnedByYou' && err.name !== 'BucketAlreadyExists') throw err;
  });
  client.destroy();
  const admin = new S3Store({ bucket: BUCKET, endpoint: direct, forcePathStyle: true, credentials, checksums: 'when_required' });
  const rcloneEnv: NodeJS.ProcessEnv = {
    ...process.env,
    RCLONE_CONFIG_BENCH_TYPE: 's3',
    RCLONE_CONFIG_BENCH_PROVIDER: 'Other',
    RCLONE_CONFIG_BENCH_ACCESS_KEY_ID: credentials.accessKeyId,
    RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY: credentials.secretAccessKey,
    RCLONE_CONFIG_BENCH_ENDPOINT: endpoint,
    RCLONE_CONFIG_BENCH_REGION: 'us-east-1',
    RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE: 'true',
  };
  // rclone 1.60 breaks on AWS_CA_BUNDLE (set on these machines).
  delete rcloneEnv.AWS_CA_BUNDLE;

  // Runs an interrupted bench left behind.
  const leftovers: string[] = [];
  for await (const o of admin.list('run-')) leftovers.push(o.key);
  await removeAll(admin, leftovers);

  const results: Measured[] = [];
  const summaries: Record<string, unknown>[] = [];
  for (const mix of mixes) {
    const dataset = await generate(mix);
    console.log(`\n## mix ${mix}: ${dataset.outputs} outputs, ${dataset.files} files, ${(dataset.bytes / MiB).toFixed(0)} MiB`);
    for (let round = 1; round <= rounds; round++) {
      // Rotate the order each round, so that no tool always runs first (after the cleanup) or last.
      const order = tools.map((_, i) => tools[(i + round - 1) % tools.length] as Tool);
      for (const tool of order) {
        const prefix = `run-${Date.now()}-${tool}`;
        const load = loadavg()[0] as number;
        let m: { stdout: string; wall: number; cpu: number; rssMiB: number };
        let transferSeconds: number | undefined;
        let transferCpuSeconds: number | undefined;
        const store0 = swiftCpuSeconds();
        const self0 = process.cpuUsage();
        if (tool.startsWith('agent-cli')) {
          const concurrency = tool === 'agent-cli' ? agentConcurrency : tool === 'agent-cli-defaults' ? undefined : Number(tool.slice('agent-cli-c'.length));
          const cli = await agentCli(dataset, endpoint, prefix, concurrency);
          m = cli;
          transferSeconds = cli.transferSeconds;
          transferCpuSeconds = cli.transferCpuSeconds;
        } else if (tool.startsWith('agent')) {
          const spec = { dir: dataset.dir, appId: APP, endpoint, bucket: BUCKET, prefix, credentials, concurrency: tool === 'agent' ? agentConcurrency : Number(tool.slice('agent-c'.length)) };
          m = await timed(process.execPath, [join(here, 'writeback-agent.js')], { ...process.env, BENCH_AGENT: JSON.stringify(spec) });
          const line = JSON.parse(m.stdout.trim().split('\n').pop() as string) as { failedFiles: number; seconds: number; cpuSeconds: number };
          if (line.failedFiles > 0) throw new Error(`agent run had ${line.failedFiles} failed files`);
          transferSeconds = line.seconds;
          transferCpuSeconds = line.cpuSeconds;
        } else if (tool === 'ceiling') {
          const spec = { dir: dataset.dir, endpoint, bucket: BUCKET, prefix, credentials, concurrency: 16 };
          m = await timed(process.execPath, [join(here, 'writeback-raw.js')], { ...process.env, BENCH_RAW: JSON.stringify(spec) });
        } else {
          const extra = tool === 'rclone-t16' ? ['--transfers', '16', '--s3-upload-concurrency', '8'] : ['--transfers', '4'];
          m = await timed('/usr/bin/rclone', ['copy', ...extra, '--exclude', '.*', dataset.dir, `bench:${BUCKET}/${prefix}`], rcloneEnv);
        }
        const storeCpuSeconds = swiftCpuSeconds() - store0;
        const self1 = process.cpuUsage(self0);
        const proxyCpuSeconds = proxy ? (self1.user + self1.system) / 1e6 : undefined;
        // Count what landed, then remove it (untimed) so the server's disk does not fill up.
        const keys: string[] = [];
        let bytes = 0;
        let files = 0;
        for await (const o of admin.list(`${prefix}/`)) {
          keys.push(o.key);
          // The agent's `<app>/_owner` marker (tenancy) is not a copy of a file: removed, not counted.
          if (o.key.endsWith(`/${OWNER_OBJECT}`)) continue;
          bytes += o.size;
          files++;
        }
        await removeAll(admin, keys);
        if (files !== dataset.files || bytes !== dataset.bytes) {
          throw new Error(`${tool} stored ${files} objects / ${bytes} bytes, expected ${dataset.files} / ${dataset.bytes}`);
        }
        const r: Measured = { mix, tool, round, wallSeconds: m.wall, cpuSeconds: m.cpu, maxRssMiB: m.rssMiB, objects: files, bytes, load, ...(transferSeconds ? { transferSeconds } : {}), ...(transferCpuSeconds ? { transferCpuSeconds } : {}), storeCpuSeconds, ...(proxyCpuSeconds !== undefined ? { proxyCpuSeconds } : {}) };
        results.push(r);
        console.log(
          `round ${round} ${tool.padEnd(10)} ${(bytes / MiB / m.wall).toFixed(1).padStart(7)} MiB/s  ${m.wall.toFixed(2).padStart(6)} s  cpu ${(m.cpu / (bytes / 1024 ** 3)).toFixed(2)} s/GiB  peak RSS ${m.rssMiB.toFixed(0)} MiB  store cpu ${(storeCpuSeconds / (bytes / 1024 ** 3)).toFixed(2)} s/GiB${proxyCpuSeconds !== undefined ? `  proxy cpu ${(proxyCpuSeconds / (bytes / 1024 ** 3)).toFixed(2)} s/GiB` : ''}  load ${load.toFixed(1)}${transferSeconds ? `  (transfer phase ${(bytes / MiB / transferSeconds).toFixed(1)} MiB/s, cpu ${((transferCpuSeconds ?? NaN) / (bytes / 1024 ** 3)).toFixed(2)} s/GiB)` : ''}`,
        );
      }
    }
    const of = (tool: Tool): Measured[] => results.filter((r) => r.mix === mix && r.tool === tool);
    const perTool = Object.fromEntries(
      tools.map((t) => [
        t,
        {
          MiBps: median(of(t).map((r) => r.bytes / MiB / r.wallSeconds)),
          cpuSecondsPerGiB: median(of(t).map((r) => r.cpuSeconds / (r.bytes / 1024 ** 3))),
          peakRssMiB: Math.max(...of(t).map((r) => r.maxRssMiB)),
          storeCpuSecondsPerGiB: median(of(t).map((r) => r.storeCpuSeconds / (r.bytes / 1024 ** 3))),
        },
      ]),
    ) as Partial<Record<Tool, ToolSummary>>;
    // Ratios from runs of the same round (minutes apart at most), then their median: steadier under
    // a shared machine's changing load than a ratio of medians.
    const paired = (other: Tool, agent: Tool = 'agent'): number | undefined => {
      if (!tools.includes(agent) || !tools.includes(other)) return undefined;
      return median(of(agent).map((a, i) => (of(other)[i] as Measured).wallSeconds / a.wallSeconds));
    };
    const summary = {
      mix,
      dataset,
      rounds,
      agentConcurrency,
      tools: perTool,
      agentVsRclone: paired('rclone'),
      agentCliVsRclone: paired('rclone', 'agent-cli'),
      agentVsRcloneT16: paired('rclone-t16'),
      agentVsCeiling: paired('ceiling'),
      // Every agent tool against rclone --transfers 4: each round's ratio, in round order.
      perRoundVsRclone: Object.fromEntries(
        tools.filter((t) => t.startsWith('agent') && tools.includes('rclone')).map((t) => [t, of(t).map((a, i) => (of('rclone')[i] as Measured).wallSeconds / a.wallSeconds)]),
      ) as Record<string, number[]>,
    };
    summaries.push(summary);
    console.log(`\nmix ${mix} (medians over ${rounds} rounds):`);
    for (const t of tools) {
      const x = perTool[t] as ToolSummary;
      console.log(`  ${t.padEnd(10)} ${x.MiBps.toFixed(1).padStart(7)} MiB/s  cpu ${x.cpuSecondsPerGiB.toFixed(2)} s/GiB  peak RSS ${x.peakRssMiB.toFixed(0)} MiB  store cpu ${x.storeCpuSecondsPerGiB.toFixed(2)} s/GiB`);
    }
    const ratio = (v: number | undefined): string => (v === undefined ? 'n/a' : `${v.toFixed(2)}x`);
    console.log(`  agent / rclone --transfers 4: ${ratio(summary.agentVsRclone)} (goal >= 1.3); / rclone-t16: ${ratio(summary.agentVsRcloneT16)}; / ceiling: ${ratio(summary.agentVsCeiling)}`);
    if (summary.agentCliVsRclone !== undefined) console.log(`  agent-cli (from its spawn) / rclone --transfers 4: ${ratio(summary.agentCliVsRclone)} (goal >= 1.3)`);
    for (const [t, xs] of Object.entries(summary.perRoundVsRclone)) {
      console.log(`  ${t} / rclone --transfers 4, median ${ratio(median(xs))}, per round: ${xs.map((x) => x.toFixed(2)).join(', ')}`);
    }
  }
  await admin.close();
  await proxy?.close();
  await writeFile(join(outDir, 'writeback-results.json'), JSON.stringify({ latencyMs, summaries, results }, null, 2));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
