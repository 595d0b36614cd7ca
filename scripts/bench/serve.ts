/**
 * bench:serve — the gRPC block service against nginx (sendfile) on loopback, same 1 GiB file.
 *
 *   npm run bench:serve [-- --seconds 3 --skip-python]
 *
 * Phases, each for the agent (a child process running only the gRPC server) and for nginx:
 * the whole file in one request; 64 KiB partitions at 1, 8 and 32 concurrent requests, from three
 * clients: the in-process grpc-js client (Node `http` for nginx), h2load (nghttp2's C load
 * generator: gRPC over h2c for the agent, HTTP/1.1 range requests for nginx; it costs the server's
 * cores the least, so it shows what the server can do) and, for the agent, grpc-java (what Spark's
 * executors would use); 64 whole-file streams open at once (peak RSS). Then the Python grpcio
 * client, whole file. Prints MiB/s, fetches/s, the ratio to nginx, the server's CPU (% of one
 * core) and peak RSS; writes the numbers to bench/out/serve-results.json. Needs
 * `apt-get install nginx nghttp2-client` and, for the Python and Java rows, the packages of
 * `.ci/run`.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once, setMaxListeners } from 'node:events';
import { mkdir, open, readFile, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { freePort } from './net.js';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ShuffleAgentClient } from '../../agent/serve/client.js';
import { frameMessage } from '../../agent/serve/grpc-wire.js';
import { loadProto, SERVICE_PATH, type Chunk } from '../../agent/serve/proto.js';
import { javaClientCommand } from '../../test/kit/java-client.js';
import { ROOT } from '../../test/kit/repo-root.js';
import { until } from '../../test/kit/wait.js';
import { encodeIndex } from '../../agent/spark/index-file.js';
import { shuffleFileName } from '../../agent/spark/file-names.js';

const run = promisify(execFile);
const GiB = 1024 * 1024 * 1024;
const PART = 64 * 1024;
const PARTS = GiB / PART;
const APP = 'spark-bench';

const argv = process.argv.slice(2);
const SECONDS = Number(argv[argv.indexOf('--seconds') + 1] ?? 3) || 3;
const SKIP_PYTHON = argv.includes('--skip-python');
const SKIP_JAVA = argv.includes('--skip-java');
/** `--only TEXT`: run only the phases whose name contains TEXT (and skip nginx unless it matches). */
const ONLY = argv.includes('--only') ? (argv[argv.indexOf('--only') + 1] ?? '') : '';
const wanted = (name: string): boolean => ONLY === '' || name.includes(ONLY);
/** Passed to the agent's server: bytes read and not yet sent over all streams. */
const MAX_BUFFERED = argv.includes('--max-buffered') ? (argv[argv.indexOf('--max-buffered') + 1] ?? '') : '';

interface Row {
  server: string;
  test: string;
  mibPerS: number;
  fetchesPerS?: number;
  cpuPct: number;
  peakRssMiB: number;
  note?: string;
}

// ---- process measurements ----

const TICKS = 100; // Linux USER_HZ: /proc/<pid>/stat counts CPU time in 1/100 s.

async function cpuSeconds(pids: number[]): Promise<number> {
  let ticks = 0;
  for (const pid of pids) {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    ticks += Number(fields[11] ?? 0) + Number(fields[12] ?? 0);
  }
  return ticks / TICKS;
}

async function rssBytes(pids: number[]): Promise<number> {
  let kib = 0;
  for (const pid of pids) {
    const text = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    kib += Number(/VmRSS:\s+(\d+)/.exec(text)?.[1] ?? 0);
  }
  return kib * 1024;
}

/** Runs `work` while sampling the server's RSS; returns wall time, CPU seconds and peak RSS. */
async function measure<T>(pids: () => Promise<number[]>, work: () => Promise<T>): Promise<{ result: T; seconds: number; cpu: number; peakRss: number }> {
  const ids = await pids();
  const cpu0 = await cpuSeconds(ids);
  let peak = await rssBytes(ids);
  const sampler = setInterval(() => void rssBytes(ids).then((r) => (peak = Math.max(peak, r))), 50);
  const t0 = performance.now();
  try {
    const result = await work();
    const seconds = (performance.now() - t0) / 1000;
    return { result, seconds, cpu: (await cpuSeconds(ids)) - cpu0, peakRss: Math.max(peak, await rssBytes(ids)) };
  } finally {
    clearInterval(sampler);
  }
}

// ---- fixtures ----

async function prepare(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const dataPath = join(dir, shuffleFileName(0, '0', 'data'));
  const exists = await stat(dataPath).then((s) => s.size === GiB, () => false);
  if (!exists) {
    process.stderr.write('writing the 1 GiB data file...\n');
    const block = randomBytes(8 * 1024 * 1024);
    const h = await open(dataPath, 'w');
    for (let at = 0, n = 0; at < GiB; at += block.length, n++) {
      block.writeUInt32BE(n, 0);
      await h.write(block);
    }
    await h.close();
  }
  const offsets = Array.from({ length: PARTS + 1 }, (_, i) => i * PART);
  await writeFile(join(dir, shuffleFileName(0, '0', 'index')), encodeIndex(offsets));
  // Warm the page cache so that both servers read from memory.
  const h = await open(dataPath, 'r');
  const buf = Buffer.allocUnsafe(8 * 1024 * 1024);
  for (let at = 0; at < GiB; at += buf.length) await h.read(buf, 0, buf.length, at);
  await h.close();
}

async function childPids(pid: number): Promise<number[]> {
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  return text.split(' ').filter(Boolean).map(Number);
}

// ---- servers ----

async function startAgent(dir: string): Promise<{ child: ChildProcess; port: number }> {
  const script = process.env.BENCH_CHILD ?? fileURLToPath(new URL('./serve-child.js', import.meta.url));
  const child = spawn(process.execPath, [script, '--dir', dir, '--app', APP, ...(MAX_BUFFERED ? ['--max-buffered', MAX_BUFFERED] : [])], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`agent child exited with ${code}`)));
  });
  return { child, port: (JSON.parse(line) as { port: number }).port };
}

async function startNginx(dir: string): Promise<{ child: ChildProcess; port: number; pids: () => Promise<number[]> }> {
  const prefix = join(dir, 'nginx');
  await mkdir(join(prefix, 'tmp'), { recursive: true });
  const port = await freePort();
  const conf = `
${process.getuid?.() === 0 ? 'user root;' : ''}
worker_processes 1;
daemon off;
pid ${prefix}/nginx.pid;
error_log ${prefix}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 10000000;
  keepalive_timeout 60s;
  client_body_temp_path ${prefix}/tmp/body;
  proxy_temp_path ${prefix}/tmp/proxy;
  fastcgi_temp_path ${prefix}/tmp/fastcgi;
  uwsgi_temp_path ${prefix}/tmp/uwsgi;
  scgi_temp_path ${prefix}/tmp/scgi;
  types { application/octet-stream data; }
  server {
    listen 127.0.0.1:${port};
    root ${dir};
    location / { }
  }
}
`;
  await writeFile(join(prefix, 'nginx.conf'), conf);
  const child = spawn('nginx', ['-p', prefix, '-c', join(prefix, 'nginx.conf'), '-e', join(prefix, 'error.log')], { stdio: 'inherit' });
  // Ready when the port answers.
  await until(
    () =>
      new Promise<boolean>((resolve) => {
        const req = http.request({ host: '127.0.0.1', port, path: '/', method: 'HEAD' }, (res) => {
          res.resume();
          resolve(true);
        });
        req.on('error', () => resolve(false));
        req.end();
      }),
    `nginx to answer on port ${port}`,
    5_000,
    50,
  );
  const pid = child.pid as number;
  return { child, port, pids: async () => [pid, ...(await childPids(pid))] };
}

// ---- clients ----

const DATA_PATH = `/${shuffleFileName(0, '0', 'data')}`;

/** GET the data file (or a range of it); with `signal`, stops when it aborts and returns the bytes so far. */
function httpGet(agent: http.Agent, port: number, range?: [number, number], signal?: AbortSignal): Promise<number> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = range ? { range: `bytes=${range[0]}-${range[1] - 1}` } : {};
    let n = 0;
    const failed = (err: Error): void => (signal?.aborted ? resolve(n) : reject(err));
    const req = http.get({ host: '127.0.0.1', port, path: DATA_PATH, agent, headers, ...(signal ? { signal } : {}) }, (res) => {
      res.on('data', (b: Buffer) => (n += b.length));
      res.on('end', () => resolve(n));
      res.on('error', failed);
    });
    req.on('error', failed);
  });
}

async function grpcWhole(client: ShuffleAgentClient, signal?: AbortSignal): Promise<number> {
  let n = 0;
  try {
    for await (const c of client.fetchShuffleBlock({ app_id: APP, shuffle_id: 0, map_id: 0, start_reduce_id: 0, end_reduce_id: PARTS }, signal ? { signal } : {}) as AsyncIterable<Chunk>) n += c.data.length;
  } catch (err) {
    if (!signal?.aborted) throw err;
  }
  return n;
}

/** `concurrency` workers fetch successive 64 KiB partitions for SECONDS; returns [fetches, bytes]. */
async function partitions(concurrency: number, fetchOne: (p: number) => Promise<number>): Promise<[number, number]> {
  const end = performance.now() + SECONDS * 1000;
  let next = 0;
  let fetches = 0;
  let bytes = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const p = next++ % PARTS;
        // Not `bytes += await ...`: that reads `bytes` before the await and loses other workers' adds.
        const n = await fetchOne(p);
        bytes += n;
        fetches++;
      }
    }),
  );
  return [fetches, bytes];
}

// ---- h2load and grpc-java ----

/** The partition h2load asks for over and over (it sends one request body): one in the middle. */
const H2LOAD_PARTITION = PARTS / 2;

interface LoadResult {
  fetches: number;
  bytes: number;
}

/** Runs h2load for SECONDS; checks that every request got a body of at least one partition. */
async function h2load(args: string[], url: string): Promise<LoadResult> {
  const { stdout } = await run('h2load', ['-D', String(SECONDS), ...args, url], { maxBuffer: 16 << 20 });
  const done = /requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed/.exec(stdout);
  const data = /traffic: .*?, ([\d.]+)(B|KB|MB|GB) \(\d+\) data/.exec(stdout);
  const bytesOut = /traffic: [\d.]+\w+ \((\d+)\) total/.exec(stdout);
  if (!done || !data || !bytesOut) throw new Error(`unexpected h2load output:\n${stdout}`);
  const succeeded = Number(done[3]);
  // gRPC errors are HTTP 200 too: the payload size tells whether partitions were really served.
  if (Number(done[4]) > 0 || succeeded === 0 || Number(bytesOut[1]) < succeeded * PART) throw new Error(`h2load requests failed or came back short:\n${stdout}`);
  return { fetches: succeeded, bytes: succeeded * PART };
}

/** The gRPC request body for one partition, framed, in a file for h2load's -d. */
async function grpcRequestFile(dir: string, partition: number): Promise<string> {
  const serialize = loadProto().service.FetchShuffleBlock?.requestSerialize as (r: object) => Buffer;
  const path = join(dir, `request-${partition}.bin`);
  await writeFile(path, frameMessage(serialize({ app_id: APP, shuffle_id: 0, map_id: '0', start_reduce_id: partition, end_reduce_id: partition + 1 })));
  return path;
}

/** h2load over one connection per 8 streams (a gRPC client multiplexes streams on a channel). */
function h2Shape(concurrency: number): string[] {
  const connections = Math.ceil(concurrency / 8);
  return ['-c', String(connections), '-m', String(Math.ceil(concurrency / connections))];
}

/** The grpc-java client's bench mode: `concurrency` partition fetches in flight on one channel. */
async function javaPartitions(target: string, concurrency: number): Promise<LoadResult & { seconds: number }> {
  const { command, args } = await javaClientCommand();
  const { stdout } = await run(command, [...args, 'bench', target, APP, '0', '0', String(PARTS), String(concurrency), String(SECONDS), '3'], { maxBuffer: 1 << 20 });
  const r = JSON.parse(stdout.trim().split('\n').at(-1) as string) as { fetches: number; bytes: number; seconds: number };
  return { fetches: r.fetches, bytes: r.bytes, seconds: r.seconds };
}

async function main(): Promise<void> {
  const dir = join(ROOT, 'bench', 'out', 'serve');
  await prepare(dir);
  const rows: Row[] = [];
  const add = (server: string, test: string, m: { seconds: number; cpu: number; peakRss: number }, bytes: number, fetches?: number, note?: string): void => {
    rows.push({
      server,
      test,
      mibPerS: bytes / (1024 * 1024) / m.seconds,
      ...(fetches !== undefined ? { fetchesPerS: fetches / m.seconds } : {}),
      cpuPct: (100 * m.cpu) / m.seconds,
      peakRssMiB: m.peakRss / (1024 * 1024),
      ...(note ? { note } : {}),
    });
    const r = rows[rows.length - 1] as Row;
    process.stderr.write(`${server.padEnd(8)} ${test.padEnd(28)} ${r.mibPerS.toFixed(0).padStart(6)} MiB/s ${r.fetchesPerS?.toFixed(0).padStart(7) ?? '       '} f/s  cpu ${r.cpuPct.toFixed(0)}%  rss ${r.peakRssMiB.toFixed(0)} MiB\n`);
  };

  // ---- the agent ----
  const agent = await startAgent(dir);
  const agentPids = async (): Promise<number[]> => [agent.child.pid as number];
  const target = `127.0.0.1:${agent.port}`;
  try {
    const tuned = new ShuffleAgentClient({ target });
    await grpcWhole(tuned); // warm-up: JIT, connection
    let m;
    if (wanted('whole file (16 MiB window)')) {
      m = await measure(agentPids, async () => (await grpcWhole(tuned)) + (await grpcWhole(tuned)));
      add('agent', 'whole file (16 MiB window)', m, m.result);
    }
    if (wanted('whole file (default window)')) {
      const untuned = new ShuffleAgentClient({ target, channelOptions: { 'grpc-node.flow_control_window': 65535 } });
      m = await measure(agentPids, () => grpcWhole(untuned));
      add('agent', 'whole file (default window)', m, m.result);
      untuned.close();
    }
    for (const c of [1, 8, 32]) {
      if (!wanted(`64 KiB partitions x${c}`)) continue;
      const pm = await measure(agentPids, () =>
        partitions(c, async (p) => (await tuned.fetchBlock({ app_id: APP, shuffle_id: 0, map_id: 0, start_reduce_id: p, end_reduce_id: p + 1 })).length),
      );
      add('agent', `64 KiB partitions x${c}`, pm, pm.result[1], pm.result[0]);
    }
    const requestFile = await grpcRequestFile(dir, H2LOAD_PARTITION);
    for (const c of [1, 8, 32]) {
      if (!wanted(`64 KiB partitions x${c} (h2load)`)) continue;
      const hm = await measure(agentPids, () => h2load([...h2Shape(c), '-d', requestFile, '-H', 'content-type: application/grpc', '-H', 'te: trailers'], `http://${target}${SERVICE_PATH}/FetchShuffleBlock`));
      add('agent', `64 KiB partitions x${c} (h2load)`, hm, hm.result.bytes, hm.result.fetches, `h2load ${h2Shape(c).join(' ')}, partition ${H2LOAD_PARTITION} each time`);
    }
    for (const c of [8, 32]) {
      if (SKIP_JAVA || !wanted(`64 KiB partitions x${c} (grpc-java)`)) continue;
      try {
        // The JVM warms up for 3 s before its own timed SECONDS: the server's CPU is over both.
        const jm = await measure(agentPids, () => javaPartitions(target, c));
        add('agent', `64 KiB partitions x${c} (grpc-java)`, { ...jm, seconds: jm.result.seconds }, jm.result.bytes, jm.result.fetches, 'one channel; server CPU includes the JVM warm-up');
      } catch (err) {
        process.stderr.write(`Java client failed (see .ci/run for its packages): ${String(err)}\n`);
      }
    }
    if (wanted('64 streams open (whole file)')) {
      // 64 whole-file streams open at once, on 8 channels (as 8 peers would), for SECONDS.
      const clients = Array.from({ length: 8 }, () => new ShuffleAgentClient({ target }));
      const controller = new AbortController();
      setMaxListeners(128, controller.signal); // one listener per stream
      const timer = setTimeout(() => controller.abort(), SECONDS * 1000);
      const before = await rssBytes(await agentPids());
      m = await measure(agentPids, async () => (await Promise.all(Array.from({ length: 64 }, (_, i) => grpcWhole(clients[i % 8] as ShuffleAgentClient, controller.signal)))).reduce((a, b) => a + b, 0));
      clearTimeout(timer);
      add('agent', '64 streams open (whole file)', m, m.result, undefined, `RSS before: ${(before / 1048576).toFixed(0)} MiB`);
      for (const c of clients) c.close();
    }

    if (!SKIP_PYTHON && wanted('whole file, Python grpcio')) {
      const script = join(ROOT, 'test', 'kit', 'python_grpc_client.py');
      try {
        const pm = await measure(agentPids, async () => {
          const { stdout } = await run('/usr/bin/python3', [script, 'bench', target, APP, '0', '0', '0', String(PARTS), '3'], { maxBuffer: 1 << 20 });
          return JSON.parse(stdout.trim().split('\n').at(-1) as string) as { bytes: number; seconds: number; mib_per_s: number };
        });
        rows.push({ server: 'agent', test: 'whole file, Python grpcio', mibPerS: pm.result.mib_per_s, cpuPct: (100 * pm.cpu) / pm.seconds, peakRssMiB: pm.peakRss / 1048576, note: 'MiB/s timed inside the Python client' });
        process.stderr.write(`agent    whole file, Python grpcio    ${pm.result.mib_per_s.toFixed(0)} MiB/s\n`);
      } catch (err) {
        process.stderr.write(`Python client failed (python3-grpcio, python3-grpc-tools installed?): ${String(err)}\n`);
      }
    }
    tuned.close();
  } finally {
    agent.child.kill('SIGTERM');
    await once(agent.child, 'exit');
  }

  // ---- nginx ----
  const nginx = await startNginx(dir);
  try {
    const one = new http.Agent({ keepAlive: true, maxSockets: 1 });
    await httpGet(one, nginx.port);
    if (wanted('whole file')) {
      const m = await measure(nginx.pids, async () => (await httpGet(one, nginx.port)) + (await httpGet(one, nginx.port)));
      add('nginx', 'whole file', m, m.result);
    }
    for (const c of [1, 8, 32]) {
      if (!wanted(`64 KiB partitions x${c}`)) continue;
      const pool = new http.Agent({ keepAlive: true, maxSockets: c });
      const pm = await measure(nginx.pids, () => partitions(c, (p) => httpGet(pool, nginx.port, [p * PART, (p + 1) * PART])));
      add('nginx', `64 KiB partitions x${c}`, pm, pm.result[1], pm.result[0]);
      pool.destroy();
    }
    for (const c of [1, 8, 32]) {
      if (!wanted(`64 KiB partitions x${c} (h2load)`)) continue;
      const from = H2LOAD_PARTITION * PART;
      // HTTP/1.1 has one request in flight per connection: `c` connections.
      const hm = await measure(nginx.pids, () => h2load(['--h1', '-c', String(c), '-H', `range: bytes=${from}-${from + PART - 1}`], `http://127.0.0.1:${nginx.port}${DATA_PATH}`));
      add('nginx', `64 KiB partitions x${c} (h2load)`, hm, hm.result.bytes, hm.result.fetches, `h2load --h1 -c ${c}`);
    }
    if (wanted('64 streams open (whole file)')) {
      const pool = new http.Agent({ keepAlive: true, maxSockets: 64 });
      const controller = new AbortController();
      const timer = setTimeout(() => controller.abort(), SECONDS * 1000);
      const m64 = await measure(nginx.pids, async () => (await Promise.all(Array.from({ length: 64 }, () => httpGet(pool, nginx.port, undefined, controller.signal)))).reduce((a, b) => a + b, 0));
      clearTimeout(timer);
      add('nginx', '64 streams open (whole file)', m64, m64.result);
      pool.destroy();
    }
    one.destroy();
  } finally {
    nginx.child.kill('SIGQUIT');
    await once(nginx.child, 'exit');
  }

  // ---- report ----
  // Ratios only between the same kind of client: h2load with h2load, Node clients with Node's http.
  const strip = (t: string): string => t.replace(/ \(.*\)$/, '');
  const nginxOf = (test: string): Row | undefined => {
    if (test.endsWith('(grpc-java)')) return undefined;
    if (test.endsWith('(h2load)')) return rows.find((r) => r.server === 'nginx' && r.test === test);
    return rows.find((r) => r.server === 'nginx' && !r.test.endsWith('(h2load)') && strip(test).startsWith(strip(r.test)));
  };
  const lines = ['| server | test | MiB/s | fetches/s | vs nginx | server CPU | server peak RSS | note |', '| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |'];
  for (const r of rows) {
    const base = r.server === 'agent' ? nginxOf(r.test) : undefined;
    const ratio = base ? `${(r.mibPerS / base.mibPerS).toFixed(2)}x` : '';
    lines.push(`| ${r.server} | ${r.test} | ${r.mibPerS.toFixed(0)} | ${r.fetchesPerS?.toFixed(0) ?? ''} | ${ratio} | ${r.cpuPct.toFixed(0)}% | ${r.peakRssMiB.toFixed(0)} MiB | ${r.note ?? ''} |`);
  }
  const table = lines.join('\n');
  process.stdout.write(`${table}\n`);
  await writeFile(join(ROOT, 'bench', 'out', 'serve-results.json'), JSON.stringify({ at: new Date().toISOString(), seconds: SECONDS, rows }, null, 2));
}

void main().catch((err: unknown) => {
  process.stderr.write(`bench:serve failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
