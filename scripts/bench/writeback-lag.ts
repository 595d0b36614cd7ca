/**
 * bench:writeback-lag — commit-to-persisted lag of the real agent (built CLI, child process,
 * S3 store on the Swift s3api of scripts/swift-s3.sh) under a sustained commit rate.
 *
 * First the store's ceiling for this output size is measured in the same run (writeback-raw.js:
 * 16 unchecked PUTs at once over a sample of the same outputs); then outputs are committed the
 * Spark way (SparkLikeExecutor: index renamed, then data) at each fraction of that ceiling for
 * `--seconds`, and the lag of each output is the time from its commit to the agent's
 * "output persisted" log line.
 *
 *   npm run bench:writeback-lag [-- --output-kib 1024 --partitions 8 --seconds 20 --fractions 0.5,0.8]
 *   --rate R          commit R outputs/s instead of fractions of a measured ceiling
 *   --bypass-merge-sort   write each output as Spark's bypass-merge-sort writer does (a scratch
 *                     file per partition, the attempt file partition by partition): the inotify
 *                     events of a real Spark map stage without Spark's CPU (issue 19)
 *   --file-events inotifywait,fs.watch   the agent's --file-events, each in turn at every rate
 *                     (default: auto, what the agent picks)
 *
 * Prints the agent's CPU per GiB from its first scan done to the last output persisted (its
 * inotifywait children included), and the writer's own CPU (this process: the executor's side).
 */
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { S3Store } from '../../agent/store/s3/s3-store.js';
import { SparkLikeExecutor } from '../../test/kit/spark-writer.js';
import { percentile, procStats, treeCpuSeconds } from './proc-stats.js';
import { flag } from './args.js';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..', '..');
const CLI = join(root, 'dist', 'agent', 'cli.js');
const MiB = 1024 * 1024;
const BUCKET = 'bench-writeback';
const credentials = { accessKeyId: 'test:tester', secretAccessKey: 'testing' };

const outputBytes = Number(flag('output-kib', '1024')) * 1024;
const partitions = Number(flag('partitions', '8'));
const seconds = Number(flag('seconds', '20'));
const fractions = flag('fractions', '0.5,0.8').split(',').map(Number);
const fixedRate = Number(flag('rate', '0'));
const bypassMergeSort = process.argv.includes('--bypass-merge-sort');
const fileEventBackends = flag('file-events', 'auto').split(',');

/** Outputs per second the store takes at most for this output size (data and index PUTs), from a raw PUT loop. */
async function ceiling(endpoint: string, admin: S3Store): Promise<number> {
  const base = await mkdtemp(join(tmpdir(), 'ssa-lag-ceiling-'));
  try {
    const exec = new SparkLikeExecutor([base]);
    const n = 200;
    for (let m = 0; m < n; m++) await exec.commit({ shuffleId: 0, mapId: m, partitions: Array.from({ length: partitions }, () => Math.floor(outputBytes / partitions)) });
    const prefix = `lag-ceiling-${Date.now()}`;
    const spec = { dir: base, endpoint, bucket: BUCKET, prefix, credentials, concurrency: 16 };
    const { stdout } = await run(process.execPath, [join(here, 'writeback-raw.js')], { env: { ...process.env, BENCH_RAW: JSON.stringify(spec) } });
    const r = JSON.parse(stdout.trim().split('\n').pop() as string) as { seconds: number };
    const keys: string[] = [];
    for await (const o of admin.list(`${prefix}/`)) keys.push(o.key);
    await admin.deleteMany(keys);
    return n / r.seconds;
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

async function lagAt(endpoint: string, admin: S3Store, rate: number, fileEvents: string): Promise<void> {
  const base = await mkdtemp(join(tmpdir(), 'ssa-lag-'));
  const local = join(base, 'local');
  await mkdir(local, { recursive: true });
  const prefix = `lag-${Date.now()}`;
  const child = spawn(
    process.execPath,
    [CLI, 'run', '--local-dirs', local, '--store', `s3://${BUCKET}/${prefix}`, '--s3-endpoint', endpoint, '--s3-force-path-style', '--s3-checksums', 'when_required',
      '--http-listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--log-level', 'debug', '--app-id', 'bench', '--file-events', fileEvents],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, AWS_ACCESS_KEY_ID: credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey } },
  );
  const committedAt = new Map<string, number>();
  const lags: number[] = [];
  let scanned!: () => void;
  const ready = new Promise<void>((r) => (scanned = r));
  createInterface({ input: child.stdout }).on('line', (line) => {
    let l: Record<string, unknown>;
    try {
      l = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return; // not a log line
    }
    if (l.msg === 'initial scan done') scanned();
    if (l.msg !== 'output persisted') return;
    const t = committedAt.get(String(l.output));
    if (t !== undefined) lags.push(Date.parse(String(l.time)) - t);
  });
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, procStats(child.pid as number)?.peakRssMiB ?? 0)), 200);
  try {
    await ready;
    const cpu0 = treeCpuSeconds(child.pid as number);
    const writer0 = process.cpuUsage();
    const exec = new SparkLikeExecutor([local]);
    const total = Math.round(rate * seconds);
    const load = loadavg()[0] as number;
    const start = Date.now();
    // Four lanes, like four task slots: one Spark-like commit is several file-system calls.
    const lanes = 4;
    await Promise.all(
      Array.from({ length: lanes }, async (_, lane) => {
        for (let i = lane; i < total; i += lanes) {
          const wait = start + (i * 1000) / rate - Date.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
          await exec.commit({ shuffleId: 0, mapId: i, partitions: Array.from({ length: partitions }, () => Math.floor(outputBytes / partitions)), bypassMergeSort });
          committedAt.set(`bench/0/${i}`, Date.now());
        }
      }),
    );
    const sendSeconds = (Date.now() - start) / 1000;
    const deadline = Date.now() + 60_000;
    while (lags.length < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const cpu = treeCpuSeconds(child.pid as number) - cpu0;
    const writer = process.cpuUsage(writer0);
    lags.sort((a, b) => a - b);
    const mibps = (total * outputBytes) / MiB / sendSeconds;
    console.log(
      `${fileEvents}: rate ${rate.toFixed(1)} outputs/s (${mibps.toFixed(1)} MiB/s, achieved ${(total / sendSeconds).toFixed(1)}/s) for ${sendSeconds.toFixed(0)} s, load ${load.toFixed(1)}: persisted ${lags.length}/${total}; ` +
        `lag p50 ${percentile(lags, 50)} ms, p99 ${percentile(lags, 99)} ms, max ${lags[lags.length - 1]} ms; agent CPU ${((cpu / sendSeconds) * 100).toFixed(0)}% of a core, ${(cpu / ((lags.length * outputBytes) / 1024 ** 3)).toFixed(2)} s/GiB${bypassMergeSort ? ' (bypass-merge-sort scratch files)' : ''}, peak RSS ${peak.toFixed(0)} MiB; ` +
        `writer CPU user ${(writer.user / 1e6).toFixed(2)} s, system ${(writer.system / 1e6).toFixed(2)} s`,
    );
  } finally {
    clearInterval(sampler);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    await rm(base, { recursive: true, force: true });
    const keys: string[] = [];
    for await (const o of admin.list(`${prefix}/`)) keys.push(o.key);
    await admin.deleteMany(keys);
  }
}

const { stdout: swiftOut } = await run('bash', [join(root, 'scripts', 'swift-s3.sh'), 'start'], { timeout: 600_000 });
const endpoint = swiftOut.trim().split('\n').pop() as string;
const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
await client.send(new CreateBucketCommand({ Bucket: BUCKET })).catch((err: { name?: string }) => {
  if (err.name !== 'BucketAlreadyOwnedByYou' && err.name !== 'BucketAlreadyExists') throw err;
});
client.destroy();
const admin = new S3Store({ bucket: BUCKET, endpoint, forcePathStyle: true, credentials, checksums: 'when_required' });
if (fixedRate > 0) for (const b of fileEventBackends) await lagAt(endpoint, admin, fixedRate, b);
else {
  const top = await ceiling(endpoint, admin);
  console.log(`store ceiling for ${outputBytes / 1024} KiB outputs (${partitions} partitions): ${top.toFixed(1)} outputs/s, ${((top * outputBytes) / MiB).toFixed(1)} MiB/s (raw PUTs, 16 at once)`);
  for (const f of fractions) for (const b of fileEventBackends) await lagAt(endpoint, admin, top * f, b);
}
await admin.close();
