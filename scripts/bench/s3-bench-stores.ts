/**
 * The S3 servers bench:spark-read runs against, on loopback: the shared one-node Swift s3api
 * (scripts/swift-s3.sh; Python on the machine's cores), SeaweedFS's S3 gateway (scripts/
 * seaweedfs.sh builds `weed` once; the bench runs its own server in a temp dir) and s3rver (npm,
 * a dev dependency; one Node process, objects as files). Plus the store's own GET ceiling: small
 * ranged GETs at a given concurrency, which tells whether the store (rather than what is measured
 * through it) bounds a benchmark.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { Agent } from 'node:http';
import { freePort } from './net.js';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { until } from '../../test/kit/wait.js';
import { procStats } from './proc-stats.js';

const run = promisify(execFile);

export type StoreKind = 'swift' | 'seaweedfs' | 's3rver';
export const STORE_KINDS: readonly StoreKind[] = ['swift', 'seaweedfs', 's3rver'];

export interface BenchStore {
  kind: StoreKind;
  endpoint: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** Extra Hadoop S3A settings this server needs (without the `spark.hadoop.` prefix). */
  s3a: Record<string, string>;
  /** Pids of the server's processes, for its CPU time (Swift's are read from its pid files). */
  pids(): number[];
  close(): Promise<void>;
}

/** An SDK client with settings both servers accept (path style, no aws-chunked bodies). */
export function client(endpoint: string, credentials: BenchStore['credentials'], maxSockets = 50): S3Client {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: { httpAgent: new Agent({ keepAlive: true, maxSockets }) },
  });
}

let seq = 0;
/** A new bucket with a unique name (the Swift cluster is shared with every other user). */
export async function newBucket(store: BenchStore, hint: string): Promise<string> {
  const name = `${hint}-${process.pid}-${Date.now().toString(36)}-${seq++}`.toLowerCase().slice(0, 63);
  const c = client(store.endpoint, store.credentials);
  try {
    await c.send(new CreateBucketCommand({ Bucket: name }));
  } finally {
    c.destroy();
  }
  return name;
}

export async function startStore(kind: StoreKind, root: string, dir: string): Promise<BenchStore> {
  if (kind === 'swift') return swift(root);
  if (kind === 'seaweedfs') return seaweedfs(root, dir);
  return s3rver(root, dir);
}

async function swift(root: string): Promise<BenchStore> {
  const { stdout } = await run('bash', [join(root, 'scripts', 'swift-s3.sh'), 'start'], { timeout: 300_000 });
  const endpoint = stdout.trim().split('\n').at(-1) as string;
  const state = process.env.SWIFT_S3_STATE ?? '/tmp/shuffle-agent-swift';
  return {
    kind: 'swift',
    endpoint,
    credentials: { accessKeyId: 'test:tester', secretAccessKey: 'testing' },
    // Swift refuses AWS SDK v1's aws-chunked PUT bodies (the plugin's heartbeat); V2 signing
    // sends plain bodies. Reads cost the same requests either way.
    s3a: { 'fs.s3a.signing-algorithm': 'S3SignerType' },
    pids: () => swiftPids(state),
    // Shared with the other users of the machine: never stopped here.
    close: async () => undefined,
  };
}

/** Swift's servers and their workers: the process groups whose leaders' pids swift-s3.sh wrote. */
function swiftPids(state: string): number[] {
  const leaders = new Set<number>();
  for (const s of ['proxy', 'object', 'container', 'account']) {
    try {
      leaders.add(Number(readFileSync(join(state, 'run', `${s}.pid`), 'utf8').trim()));
    } catch {
      // not running
    }
  }
  return groupMembers(leaders);
}

/** Pids whose process group is one of `leaders` (from /proc/PID/stat's pgrp field). */
function groupMembers(leaders: Set<number>): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
      if (leaders.has(Number(f[2]))) out.push(Number(d));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

async function seaweedfs(root: string, dir: string): Promise<BenchStore> {
  let bin: string;
  try {
    const { stdout } = await run('bash', [join(root, 'scripts', 'seaweedfs.sh'), 'install'], { timeout: 1_800_000, maxBuffer: 16 * 1024 * 1024 });
    bin = stdout.trim().split('\n').at(-1) as string;
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`SeaweedFS could not be installed by scripts/seaweedfs.sh:\n${e.stderr ?? e.message}`, { cause: err });
  }
  const data = join(dir, 'seaweedfs');
  await mkdir(data, { recursive: true });
  const credentials = { accessKeyId: 'bench', secretAccessKey: 'bench-secret' };
  const config = join(data, 's3.json');
  await writeFile(config, JSON.stringify({ identities: [{ name: 'bench', credentials: [{ accessKey: credentials.accessKeyId, secretKey: credentials.secretAccessKey }], actions: ['Admin', 'Read', 'Write', 'List', 'Tagging'] }] }));
  // Each of weed's HTTP ports has a gRPC twin at +10000: pick ports whose twins are free too.
  const ports: number[] = [];
  while (ports.length < 4) {
    const p = await freePort();
    if (p + 10_000 < 65_536 && !ports.includes(p)) ports.push(p);
  }
  const [master, volume, filer, s3] = ports as [number, number, number, number];
  return childStore('seaweedfs', bin, [
    'server', `-dir=${data}`, '-ip=127.0.0.1', '-ip.bind=127.0.0.1',
    `-master.port=${master}`, `-volume.port=${volume}`, '-master.volumeSizeLimitMB=256', '-volume.max=50',
    '-filer', `-filer.port=${filer}`, '-s3', `-s3.port=${s3}`, `-s3.config=${config}`,
  ], `http://127.0.0.1:${s3}`, credentials, {});
}

async function s3rver(root: string, dir: string): Promise<BenchStore> {
  const data = join(dir, 's3rver');
  await mkdir(data, { recursive: true });
  const port = await freePort();
  // --openssl-legacy-provider: s3rver's paged listings use DES (see the platform notes).
  return childStore('s3rver', process.execPath, ['--openssl-legacy-provider', join(root, 'node_modules', 's3rver', 'bin', 's3rver.js'), '-d', data, '-a', '127.0.0.1', '-p', String(port), '-s'],
    `http://127.0.0.1:${port}`, { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }, {});
}

/** A server run as this process's child; ready once a bucket can be made on it. */
async function childStore(kind: StoreKind, bin: string, args: string[], endpoint: string, credentials: BenchStore['credentials'], s3a: Record<string, string>): Promise<BenchStore> {
  const child: ChildProcess = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const log: string[] = [];
  child.stderr?.on('data', (b: Buffer) => {
    log.push(b.toString());
    if (log.length > 200) log.splice(0, 100);
  });
  const exited = new Promise<number | null>((r) => child.on('exit', r));
  const store: BenchStore = {
    kind,
    endpoint,
    credentials,
    s3a,
    pids: () => [...new Set([...groupMembers(new Set([child.pid as number])), child.pid as number])],
    close: async () => {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(t);
      }
    },
  };
  let lastError: unknown;
  try {
    await until(
      async () => {
        if (child.exitCode !== null) throw new Error(`${kind} exited (${child.exitCode}):\n${log.join('').slice(-3000)}`);
        return newBucket(store, 'ready').then(
          () => true,
          (err: unknown) => void (lastError = err),
        );
      },
      () => `${kind} to answer (last: ${String(lastError)}):\n${log.join('').slice(-3000)}`,
      120_000,
      500,
    );
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}

export interface Ceiling {
  concurrency: number;
  requests: number;
  /** Ranged GETs per second. */
  perSecond: number;
  /** Mean latency of one GET, ms. */
  meanMs: number;
  /** CPU seconds the measuring client (this process) used: near the wall time, it bounds. */
  clientCpuSeconds: number;
  /** CPU seconds the store's processes used. */
  storeCpuSeconds: number;
  wallSeconds: number;
}

/**
 * The store's GET ceiling at `concurrency`: `requests` ranged GETs of `rangeBytes` each at
 * random offsets of one 8 MiB object, `concurrency` at a time, through `endpoint` (the store,
 * or the latency proxy in front of it).
 */
export async function getCeiling(store: BenchStore, endpoint: string, bucket: string, concurrency: number, requests: number, rangeBytes: number): Promise<Ceiling> {
  const c = client(endpoint, store.credentials, concurrency);
  // Twice the range at least, so that ranges start at random offsets (a shape with blocks over 4 MiB).
  const size = Math.max(8 * 1024 * 1024, 2 * rangeBytes);
  const key = 'ceiling/object.data';
  try {
    await c.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: Buffer.alloc(size, 7) }));
    const one = async (): Promise<void> => {
      const start = Math.floor(Math.random() * (size - rangeBytes));
      const r = await c.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${start}-${start + rangeBytes - 1}` }));
      const body = await r.Body?.transformToByteArray();
      if (body?.length !== rangeBytes) throw new Error(`ranged GET answered ${body?.length} bytes, not ${rangeBytes}`);
    };
    for (let i = 0; i < concurrency; i++) await one(); // warm connections
    const storeCpu = (): number => store.pids().reduce((a, p) => a + (procStats(p)?.cpuSeconds ?? 0), 0);
    const s0 = storeCpu();
    const u0 = process.cpuUsage();
    const t0 = performance.now();
    let next = 0;
    let latencySum = 0;
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < requests) {
          next++;
          const t = performance.now();
          await one();
          latencySum += performance.now() - t;
        }
      }),
    );
    const wall = (performance.now() - t0) / 1000;
    const u = process.cpuUsage(u0);
    return {
      concurrency,
      requests,
      perSecond: requests / wall,
      meanMs: latencySum / requests,
      clientCpuSeconds: (u.user + u.system) / 1e6,
      storeCpuSeconds: storeCpu() - s0,
      wallSeconds: wall,
    };
  } finally {
    c.destroy();
  }
}
