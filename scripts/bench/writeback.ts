/**
 * bench:writeback — the same Spark-like local dir (~1 GiB of shuffle_*.data/.index under
 * blockmgr-<uuid>/NN/) copied to the same Swift s3api server by the agent (WritebackQueue + S3Store,
 * in a child process) and by Debian's `rclone copy --transfers 4`, alternating, each to a fresh
 * prefix. Prints throughput, the ratio, CPU seconds per GiB and the agent's peak RSS.
 *
 *   npm run bench:writeback   # BENCH_SIZE_MIB=1024 BENCH_ROUNDS=3 BENCH_AGENT_CONCURRENCY=4 by default
 *
 * Needs root on Debian for the first run (installs swift, memcached, rclone when missing).
 */
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { S3Store } from '../../agent/store/s3-store.js';
import { encodeIndex } from '../../agent/spark/index-file.js';
import { localPlacement } from '../../agent/spark/java-hash.js';
import { shuffleFileName } from '../../agent/spark/file-names.js';

const run = promisify(execFile);
const MiB = 1024 * 1024;
const here = dirname(fileURLToPath(import.meta.url));
// dist/scripts/bench -> repository root
const root = resolve(here, '..', '..', '..');
const dataDir = join(root, 'bench', 'out', 'writeback-data');
const sizeMiB = Number(process.env.BENCH_SIZE_MIB ?? 1024);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
// Outputs the agent writes at once (its --upload-concurrency); rclone gets --transfers 4.
const agentConcurrency = Number(process.env.BENCH_AGENT_CONCURRENCY ?? 4);
const credentials = { accessKeyId: 'test:tester', secretAccessKey: 'testing' };
const APP = 'app-bench';
const BUCKET = 'bench-writeback';

interface Measured {
  tool: 'agent' | 'rclone';
  round: number;
  wallSeconds: number;
  cpuSeconds: number;
  maxRssMiB: number;
  objects: number;
  bytes: number;
  /** Agent only: seconds from the first output queued to the queue idle (no process start-up). */
  transferSeconds?: number;
}

/** A Spark-like local dir: one executor, 4 shuffles, data files of 1–15 MiB and a few of 48 MiB. */
async function generate(): Promise<{ files: number; bytes: number }> {
  const marker = join(dataDir, '.complete');
  const want = `${sizeMiB}`;
  if (existsSync(marker) && (await readFile(marker, 'utf8')) === want) {
    return JSON.parse(await readFile(join(dataDir, '.summary.json'), 'utf8')) as { files: number; bytes: number };
  }
  await rm(dataDir, { recursive: true, force: true });
  const bm = join(dataDir, `blockmgr-${randomUUID()}`);
  let bytes = 0;
  let files = 0;
  const partitions = 200;
  for (let m = 0; bytes < sizeMiB * MiB; m++) {
    const shuffle = m % 4;
    const size = m % 16 === 15 ? 48 * MiB : (1 + ((m * 7919) % 15)) * MiB + ((m * 104_729) % 65_536);
    const offsets = [0];
    for (let p = 1; p <= partitions; p++) offsets.push(Math.floor((size * p) / partitions));
    for (const [type, body] of [['data', randomBytes(size)], ['index', encodeIndex(offsets)]] as const) {
      const name = shuffleFileName(shuffle, String(1000 + m), type);
      const dir = join(bm, localPlacement(name, 1).subDir);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, name), body);
      bytes += body.length;
      files++;
    }
  }
  await writeFile(join(dataDir, '.summary.json'), JSON.stringify({ files, bytes }));
  await writeFile(marker, want);
  return { files, bytes };
}

/** Run a command under GNU time: wall, user+sys CPU and peak RSS of the process tree's largest process. */
async function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<{ stdout: string; wall: number; cpu: number; rssMiB: number }> {
  const out = join(root, 'bench', 'out', `time-${process.pid}.txt`);
  const { stdout } = await run('/usr/bin/time', ['-f', '%e %U %S %M', '-o', out, cmd, ...args], { env, maxBuffer: 64 * MiB });
  const [wall, user, sys, rssKiB] = (await readFile(out, 'utf8')).trim().split('\n').pop()!.split(' ').map(Number) as [number, number, number, number];
  await rm(out, { force: true });
  return { stdout, wall, cpu: user + sys, rssMiB: rssKiB / 1024 };
}

function ensureRclone(): void {
  if (existsSync('/usr/bin/rclone')) return;
  const r = spawnSync('apt-get', ['install', '-y', '-q', '--no-install-recommends', 'rclone'], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (r.status !== 0) throw new Error('apt-get install rclone failed');
}

async function main(): Promise<void> {
  if (!existsSync('/usr/bin/time')) throw new Error('GNU time (/usr/bin/time, Debian package "time") is needed to measure CPU and RSS');
  ensureRclone();
  const { stdout: swiftOut } = await run('bash', [join(root, 'scripts', 'swift-s3.sh'), 'start'], { timeout: 600_000 });
  const endpoint = swiftOut.trim().split('\n').pop() as string;
  console.log(`swift s3api at ${endpoint}; generating ${sizeMiB} MiB under ${dataDir} ...`);
  const dataset = await generate();
  console.log(`dataset: ${dataset.files} files, ${(dataset.bytes / MiB).toFixed(0)} MiB`);

  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
  await client.send(new CreateBucketCommand({ Bucket: BUCKET })).catch((err: { name?: string }) => {
    if (err.name !== 'BucketAlreadyOwnedByYou' && err.name !== 'BucketAlreadyExists') throw err;
  });
  client.destroy();
  const admin = new S3Store({ bucket: BUCKET, endpoint, forcePathStyle: true, credentials, checksums: 'when_required' });

  const results: Measured[] = [];
  const agentScript = join(here, 'writeback-agent.js');
  for (let round = 1; round <= rounds; round++) {
    for (const tool of ['agent', 'rclone'] as const) {
      const prefix = `run-${Date.now()}-${tool}`;
      let m: { stdout: string; wall: number; cpu: number; rssMiB: number };
      let transferSeconds: number | undefined;
      if (tool === 'agent') {
        const spec = { dir: dataDir, appId: APP, endpoint, bucket: BUCKET, prefix, credentials, concurrency: agentConcurrency, maxConcurrentRequests: 8 };
        m = await timed(process.execPath, [agentScript], { ...process.env, BENCH_AGENT: JSON.stringify(spec) });
        const line = JSON.parse(m.stdout.trim().split('\n').pop() as string) as { failedFiles: number; seconds: number };
        if (line.failedFiles > 0) throw new Error(`agent run had ${line.failedFiles} failed files`);
        transferSeconds = line.seconds;
      } else {
        const env: NodeJS.ProcessEnv = {
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
        delete env.AWS_CA_BUNDLE;
        m = await timed('/usr/bin/rclone', ['copy', '--transfers', '4', '--exclude', '.*', dataDir, `bench:${BUCKET}/${prefix}`], env);
      }
      // Count what landed, then remove it (untimed) so the server's disk does not fill up.
      const keys: string[] = [];
      let bytes = 0;
      for await (const o of admin.list(`${prefix}/`)) {
        keys.push(o.key);
        bytes += o.size;
      }
      await admin.deleteMany(keys);
      if (keys.length !== dataset.files || bytes !== dataset.bytes) {
        throw new Error(`${tool} stored ${keys.length} objects / ${bytes} bytes, expected ${dataset.files} / ${dataset.bytes}`);
      }
      const r: Measured = { tool, round, wallSeconds: m.wall, cpuSeconds: m.cpu, maxRssMiB: m.rssMiB, objects: keys.length, bytes, ...(transferSeconds ? { transferSeconds } : {}) };
      results.push(r);
      console.log(
        `round ${round} ${tool.padEnd(6)} ${((bytes / MiB) / m.wall).toFixed(1).padStart(7)} MiB/s  ${m.wall.toFixed(2)} s  cpu ${(m.cpu / (bytes / 1024 ** 3)).toFixed(2)} s/GiB  peak RSS ${m.rssMiB.toFixed(0)} MiB${transferSeconds ? `  (transfer phase ${((bytes / MiB) / transferSeconds).toFixed(1)} MiB/s)` : ''}`,
      );
    }
  }
  await admin.close();

  const median = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    const mid = Math.floor(s.length / 2);
    return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
  };
  const of = (tool: string): Measured[] => results.filter((r) => r.tool === tool);
  const throughput = (tool: string): number => median(of(tool).map((r) => r.bytes / MiB / r.wallSeconds));
  const cpuPerGiB = (tool: string): number => median(of(tool).map((r) => r.cpuSeconds / (r.bytes / 1024 ** 3)));
  const summary = {
    dataset,
    rounds,
    agentConcurrency,
    agentMiBps: throughput('agent'),
    rcloneMiBps: throughput('rclone'),
    ratio: throughput('agent') / throughput('rclone'),
    agentCpuSecondsPerGiB: cpuPerGiB('agent'),
    rcloneCpuSecondsPerGiB: cpuPerGiB('rclone'),
    agentPeakRssMiB: Math.max(...of('agent').map((r) => r.maxRssMiB)),
    agentTransferMiBps: median(of('agent').map((r) => r.bytes / MiB / (r.transferSeconds ?? r.wallSeconds))),
    results,
  };
  console.log(
    `\nagent (upload concurrency ${agentConcurrency}) ${summary.agentMiBps.toFixed(1)} MiB/s, rclone ${summary.rcloneMiBps.toFixed(1)} MiB/s: ratio ${summary.ratio.toFixed(2)}x (goal >= 1.0, aim 1.3)\n` +
      `CPU: agent ${summary.agentCpuSecondsPerGiB.toFixed(2)} s/GiB, rclone ${summary.rcloneCpuSecondsPerGiB.toFixed(2)} s/GiB\n` +
      `agent peak RSS ${summary.agentPeakRssMiB.toFixed(0)} MiB (goal < 200)\n` +
      `agent transfer phase alone (no process start-up): ${summary.agentTransferMiBps.toFixed(1)} MiB/s, ${(summary.agentTransferMiBps / summary.rcloneMiBps).toFixed(2)}x rclone's whole run`,
  );
  await writeFile(join(root, 'bench', 'out', 'writeback-results.json'), JSON.stringify(summary, null, 2));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
