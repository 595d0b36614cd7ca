/**
 * DaemonSet mode end to end: ONE agent (the built CLI as a child process) watches a hostPath-like
 * root laid out `<root>/<appId>/<executorId>/blockmgr-*` for TWO apps and THREE executors, as the
 * executor pod template's `subPathExpr: $(SPARK_APP_ID)/$(POD_NAME)` makes it on a node. Each
 * app's outputs must land under its own app id in the store (even where shuffle and map ids
 * collide between apps), the status must list both apps, and SIGTERM must exit 0 once stored.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { fallbackKey } from '../../agent/spark/fallback-key.js';
import { shuffleFileName } from '../../agent/spark/file-names.js';
import { SparkLikeExecutor, type CommittedFiles } from '../../scripts/spark-writer.js';

const ROOT = resolve(import.meta.dirname, '../..');
const CLI = join(ROOT, 'dist/agent/cli.js');
const APP_A = 'spark-0a1b2c3d4e5f60718293a4b5c6d7e8f9';
const APP_B = 'spark-f9e8d7c6b5a4938271605f4e3d2c1b0a';
const WAIT_MS = 20_000;

/** Every httpGet probe path of the agent containers in daemonset/*.yaml. */
function manifestProbePaths(): string[] {
  const dir = join(ROOT, 'daemonset');
  const paths = new Set<string>();
  const visit = (node: unknown, key?: string): void => {
    if (Array.isArray(node)) node.forEach((n) => visit(n));
    else if (node !== null && typeof node === 'object') {
      const o = node as Record<string, unknown>;
      if (key !== undefined && /Probe$/.test(key)) paths.add((o.httpGet as { path: string }).path);
      for (const [k, v] of Object.entries(o)) visit(v, k);
    }
  };
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.yaml'))) {
    for (const d of parseAllDocuments(readFileSync(join(dir, f), 'utf8'))) visit(d.toJS());
  }
  return [...paths].sort();
}

interface Status {
  state: string;
  apps: string[];
  pendingOutputs: number;
  persistedOutputs: number;
  failed: unknown[];
}

interface Expected {
  appId: string;
  files: CommittedFiles;
}

let work: string;
let agent: ChildProcess | undefined;
let exited: Promise<number | null>;
let baseUrl: string;

/** Start the agent and resolve with its HTTP address, read from its "http listening" log line. */
async function startAgent(localRoot: string, store: string): Promise<void> {
  const child = spawn(
    process.execPath,
    [
      CLI,
      'run',
      `--local-dirs=${localRoot}`,
      '--local-dirs-layout={appId}/{executorId}',
      `--store=file:${store}`,
      '--http-listen=127.0.0.1:0',
      '--grpc-listen=127.0.0.1:0',
      // No reconciling rescan: file events alone must find every output.
      '--rescan-interval=0',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  agent = child;
  exited = new Promise((resolveExit) => child.once('exit', (code) => resolveExit(code)));
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const address = await new Promise<{ host: string; port: number }>((resolveAddress, reject) => {
    const timer = setTimeout(() => reject(new Error('agent did not report its HTTP address')), WAIT_MS);
    child.once('exit', (code) => reject(new Error(`agent exited with ${code} before listening`)));
    lines.on('line', (line) => {
      const entry = JSON.parse(line) as { msg?: string; http?: { host: string; port: number } };
      if (entry.msg === 'http listening' && entry.http) {
        clearTimeout(timer);
        resolveAddress(entry.http);
      }
    });
  });
  baseUrl = `http://${address.host}:${address.port}`;
}

async function status(): Promise<Status> {
  const res = await fetch(`${baseUrl}/v1/status`);
  expect(res.status).toBe(200);
  return (await res.json()) as Status;
}

/** Poll the status endpoint until `done` holds, or fail after WAIT_MS with the last status seen. */
async function waitForStatus(done: (s: Status) => boolean): Promise<Status> {
  const deadline = Date.now() + WAIT_MS;
  let last = await status();
  while (!done(last)) {
    if (Date.now() > deadline) throw new Error(`status never met the condition: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 50));
    last = await status();
  }
  return last;
}

beforeAll(async () => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (npm test does)`);
  work = await mkdtemp(join(tmpdir(), 'shuffle-agent-daemonset-'));
});

afterAll(async () => {
  if (agent && agent.exitCode === null) {
    agent.kill('SIGKILL');
    await exited;
  }
  await rm(work, { recursive: true, force: true });
});

describe('DaemonSet layout: two apps, three executors, one agent', () => {
  it('stores each app under its own app id, lists both apps, and exits 0 on SIGTERM', async () => {
    const localRoot = join(work, 'local');
    const store = join(work, 'store');
    // What the kubelet makes of subPathExpr $(SPARK_APP_ID)/$(POD_NAME) for three executor pods.
    const a1 = new SparkLikeExecutor([join(localRoot, APP_A, 'app-a-exec-1')]);
    const a2 = new SparkLikeExecutor([join(localRoot, APP_A, 'app-a-exec-2')]);
    const b1 = new SparkLikeExecutor([join(localRoot, APP_B, 'app-b-exec-1')]);
    await mkdir(localRoot, { recursive: true });
    const expected: Expected[] = [];

    // Committed before the agent starts: found by the initial scan.
    expected.push({ appId: APP_A, files: await a1.commit({ shuffleId: 0, mapId: 0, partitions: [100, 0, 2_000] }) });

    await startAgent(localRoot, store);
    await waitForStatus((s) => s.state === 'serving');
    // The probes the manifests point at are real endpoints of the built agent.
    const probePaths = manifestProbePaths();
    expect(probePaths).toEqual(['/healthz', '/readyz']);
    for (const path of probePaths) expect((await fetch(`${baseUrl}${path}`)).status, path).toBe(200);

    // Committed while the agent runs, in all three executors. App B reuses app A's shuffle and
    // map ids: only the app id in the key keeps them apart.
    expected.push({ appId: APP_A, files: await a1.commit({ shuffleId: 0, mapId: 1, partitions: [10, 20, 30] }) });
    expected.push({ appId: APP_A, files: await a2.commit({ shuffleId: 0, mapId: 2, partitions: [4_096] }) });
    expected.push({ appId: APP_A, files: await a2.commit({ shuffleId: 1, mapId: 3, partitions: [1, 2] }) });
    expected.push({ appId: APP_B, files: await b1.commit({ shuffleId: 0, mapId: 0, partitions: [300, 300] }) });
    expected.push({ appId: APP_B, files: await b1.commit({ shuffleId: 0, mapId: 1, partitions: [50], leaveDebris: true }) });
    // Every partition empty: Spark writes the index only.
    expected.push({ appId: APP_B, files: await b1.commit({ shuffleId: 2, mapId: 7, partitions: [0, 0] }) });

    const done = await waitForStatus((s) => s.persistedOutputs >= expected.length && s.pendingOutputs === 0);
    expect(done.persistedOutputs).toBe(expected.length);
    expect(done.failed).toEqual([]);
    expect([...done.apps].sort()).toEqual([APP_A, APP_B]);
    expect(done.state).toBe('serving');

    // The store holds one tree per app, named by app id (not by executor, not the default app id).
    expect((await readdir(store)).filter((n) => !n.startsWith('.')).sort()).toEqual([APP_A, APP_B]);
    for (const { appId, files } of expected) {
      const indexName = shuffleFileName(files.shuffleId, files.mapId, 'index');
      const dataName = shuffleFileName(files.shuffleId, files.mapId, 'data');
      const storedIndex = await readFile(join(store, fallbackKey(appId, files.shuffleId, indexName)));
      expect(storedIndex.equals(await readFile(files.indexPath)), `${appId} ${indexName}`).toBe(true);
      const dataKey = join(store, fallbackKey(appId, files.shuffleId, dataName));
      if (files.dataPath === undefined) {
        expect(existsSync(dataKey), `${appId} ${dataName} (empty output) has no data object`).toBe(false);
      } else {
        expect((await readFile(dataKey)).equals(files.data), `${appId} ${dataName}`).toBe(true);
      }
    }
    // Same shuffle and map ids in both apps, different bytes, both kept.
    const a = await readFile(join(store, fallbackKey(APP_A, 0, 'shuffle_0_0_0.data')));
    const b = await readFile(join(store, fallbackKey(APP_B, 0, 'shuffle_0_0_0.data')));
    expect(a.length).toBe(2_100);
    expect(b.length).toBe(600);

    agent?.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
