/**
 * The built agent as a tenant on a shared node would attack it, over real sockets:
 * - HTTP/2: thousands of gRPC streams that never finish their request, without a valid token,
 *   must not grow the agent (RSS of the child measured); a valid caller's unfinished request is
 *   cancelled after --grpc-request-body-timeout.
 * - HTTP: from another address than loopback, probes and metrics answer but drain does not, and
 *   the status names no app, path or error; from loopback the full status is bounded.
 * - Per-app tokens: an executor proves it writes inside its own app's directory and gets its
 *   app's token, which reads that app and no other; an app the node never saw is not served
 *   (unless --grpc-serve-unseen-apps); a sidecar serves its own app only.
 */
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import http2 from 'node:http2';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentProcess, CLI } from '../kit/agent-process.js';
import { tempDir } from '../kit/temp-dir.js';
import { SparkLikeExecutor } from '../kit/spark-writer.js';
import { ShuffleAgentClient } from '../../agent/serve/client.js';
import { frameMessage } from '../../agent/serve/grpc-wire.js';
import { FileStore } from '../../agent/store/file-store.js';
import { statusOf } from '../support/grpc-client-helpers.js';
import { storeOutput, writeOutput } from '../support/grpc-fixtures.js';

const APP_A = 'spark-0a1b2c3d4e5f60718293a4b5c6d7e8f9';
const APP_B = 'spark-f9e8d7c6b5a4938271605f4e3d2c1b0a';
const APP_GONE = 'spark-99999999999999999999999999999999';
const FETCH_PATH = '/spark.shuffleagent.v1.ShuffleAgent/FetchShuffleBlock';

function rssBytes(pid: number): Promise<number> {
  return readFile(`/proc/${pid}/status`, 'utf8').then((s) => Number(/VmRSS:\s+(\d+) kB/.exec(s)?.[1]) * 1024);
}

/** An address of this machine that is not loopback: requests from it are "another pod" to the agent. */
function externalAddress(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  throw new Error('this machine has no non-loopback IPv4 address; the test needs one to act as another pod');
}

describe('hardened serving, end to end', () => {
  const cleanups: Array<() => Promise<void>> = [];
  let agent: AgentProcess | undefined;

  afterEach(async () => {
    await agent?.stop('SIGKILL');
    agent = undefined;
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function setup(): Promise<{ dir: string; local: string; store: string }> {
    const t = await tempDir('ssa-harden-');
    cleanups.push(t.cleanup);
    const local = join(t.path, 'local');
    await mkdir(local, { recursive: true });
    return { dir: t.path, local, store: join(t.path, 'store') };
  }

  it('HTTP/2: 4 connections x 1000 unauthenticated streams with unfinished bodies do not grow the agent', async () => {
    const { dir, local, store } = await setup();
    await writeFile(join(dir, 'token'), 'the-node-token\n');
    agent = await AgentProcess.start(['--local-dirs', local, '--store', `file:${store}`, '--grpc-token-file', join(dir, 'token')]);
    const before = await rssBytes(agent.pid);
    const body = frameMessage(Buffer.alloc(64 * 1024 - 16)).subarray(0, 60 * 1024);
    // The client's own session memory must not be what limits the flood (its default is 10 MB).
    const sessions = Array.from({ length: 4 }, () => http2.connect(`http://127.0.0.1:${agent?.grpcPort}`, { maxSessionMemory: 4096 }));
    cleanups.push(async () => sessions.forEach((s) => s.destroy()));
    for (const s of sessions) s.on('error', () => undefined);
    // Open streams only once the server's SETTINGS (its stream limit) are known, as any client would.
    await Promise.all(sessions.map((s) => once(s, 'remoteSettings')));
    const settled: Array<Promise<unknown>> = [];
    for (const s of sessions) {
      for (let i = 0; i < 1000; i++) {
        const req = s.request({ ':method': 'POST', ':path': FETCH_PATH, 'content-type': 'application/grpc', te: 'trailers', authorization: i % 2 ? 'Bearer wrong' : '' });
        // Done when the server answered, the stream closed or failed, or the bytes left for the server.
        settled.push(
          new Promise((resolve) => {
            req.on('response', resolve);
            req.on('close', resolve);
            req.on('error', resolve);
            req.write(body, resolve);
          }),
        );
      }
    }
    await Promise.all(settled);
    // A PING is answered after every frame the server received before it on that connection.
    // (A connection the server closed meanwhile, e.g. GOAWAY for too many refused streams, has nothing left to process.)
    await Promise.all(
      sessions.map(
        (s) =>
          new Promise((resolve) => {
            if (s.closed || s.destroyed) return resolve(undefined);
            s.once('close', resolve);
            if (!s.ping(resolve)) resolve(undefined);
          }),
      ),
    );
    const after = await rssBytes(agent.pid);
    expect(after - before, `RSS ${Math.round(before / 1048576)} -> ${Math.round(after / 1048576)} MiB`).toBeLessThan(64 * 1024 * 1024);
    // And the agent still serves: a valid caller gets an answer.
    const c = new ShuffleAgentClient({ target: `127.0.0.1:${agent.grpcPort}`, token: 'the-node-token' });
    cleanups.push(async () => c.close());
    expect((await c.getStatus()).state).toBe('AGENT_STATE_SERVING');
  });

  it('HTTP/2: a valid caller whose request never ends is cancelled after --grpc-request-body-timeout', async () => {
    const { dir, local, store } = await setup();
    await writeFile(join(dir, 'token'), 'the-node-token\n');
    agent = await AgentProcess.start(['--local-dirs', local, '--store', `file:${store}`, '--grpc-token-file', join(dir, 'token'), '--grpc-request-body-timeout', '0.3']);
    const session = http2.connect(`http://127.0.0.1:${agent.grpcPort}`);
    cleanups.push(async () => session.destroy());
    const req = session.request({ ':method': 'POST', ':path': FETCH_PATH, 'content-type': 'application/grpc', te: 'trailers', authorization: 'Bearer the-node-token' });
    req.on('error', () => undefined);
    req.write(frameMessage(Buffer.alloc(100)).subarray(0, 50));
    const started = Date.now();
    const [headers] = (await once(req, 'response')) as [http2.IncomingHttpHeaders];
    expect(headers['grpc-status']).toBe('1');
    expect(String(headers['grpc-message'])).toMatch(/not received within 300 ms/);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('HTTP: from another address, probes and metrics answer, drain is refused, the status names no tenant; loopback gets the bounded full status', async () => {
    const { local, store } = await setup();
    // Outputs of two apps; 80 broken indexes make 80 problems (more than the status lists).
    const a = new SparkLikeExecutor([join(local, APP_A, 'exec-1')]);
    await a.commit({ shuffleId: 0, mapId: 0, partitions: [10, 20] });
    const b = new SparkLikeExecutor([join(local, APP_B, 'exec-2')]);
    await b.commit({ shuffleId: 0, mapId: 0, partitions: [30] });
    const bad = join(a.blockManagerDirs[0] as string, '0c');
    await mkdir(bad, { recursive: true });
    for (let i = 0; i < 80; i++) await writeFile(join(bad, `shuffle_9_${i}_0.index`), Buffer.alloc(7));
    agent = await AgentProcess.start(['--local-dirs', local, '--local-dirs-layout', '{appId}/{executorId}', '--store', `file:${store}`, '--http-listen', '0.0.0.0:0', '--incomplete-grace', '0']);
    const running = agent;
    const full = await running.waitForStatus((s) => s.persistedOutputs === 2 && (s.failedFiles as number) >= 80);
    expect(full.detail).toBe('full');
    expect((full.failed as unknown[]).length).toBeLessThanOrEqual(50);
    expect([...(full.apps as string[])].sort()).toEqual([APP_A, APP_B]);

    const other = `http://${externalAddress()}:${running.httpPort}`;
    for (const path of ['/healthz', '/readyz', '/metrics']) expect((await fetch(other + path)).status, path).toBe(200);
    const open = await fetch(`${other}/v1/status`);
    expect(open.status).toBe(200);
    const text = await open.text();
    for (const secret of [APP_A, APP_B, local, 'exec-1', 'shuffle_9_']) expect(text, `open status leaks ${secret}`).not.toContain(secret);
    const doc = JSON.parse(text) as Record<string, unknown>;
    expect(doc.state).toBe('serving');
    expect(doc.persistedOutputs).toBe(2);
    expect((await fetch(`${other}/v1/drain`, { method: 'POST' })).status).toBe(403);
    expect((await fetch(`${other}/v1/status?wait=safe_to_exit&timeout=0.1&drain=true`)).status).toBe(403);
    // Waiting is open (an httpGet preStop hook on the Spark container waits this way), and names no tenant.
    const waited = await fetch(`${other}/v1/status?wait=serving&timeout=1`);
    expect(waited.status).toBe(200);
    expect(await waited.text()).not.toContain(APP_A);
    expect((await running.status()).state, 'no drain happened').toBe('serving');
    // Loopback: the agent's own pod may drain.
    expect((await fetch(`${running.url}/v1/drain`, { method: 'POST' })).status).toBeLessThan(300);
  });

  it('per-app tokens: an executor proves its app from its own directory, and the token reads that app only', async () => {
    const { dir, local, store } = await setup();
    await writeFile(join(dir, 'app-key'), `${randomBytes(32).toString('hex')}\n`);
    const execA = join(local, APP_A, 'exec-a-1');
    const execB = join(local, APP_B, 'exec-b-1');
    const a = new SparkLikeExecutor([execA]);
    const committedA = await a.commit({ shuffleId: 0, mapId: 0, partitions: [100, 200] });
    await new SparkLikeExecutor([execB]).commit({ shuffleId: 0, mapId: 0, partitions: [300] });
    // An app whose executors ran on another node: only in the store.
    const gone = await writeOutput(join(dir, 'elsewhere'), APP_GONE, 0, '0', [50]);
    const fileStore = new FileStore(store);
    await storeOutput(fileStore, gone.output);
    await fileStore.close();

    agent = await AgentProcess.start(['--local-dirs', local, '--local-dirs-layout', '{appId}/{executorId}', '--store', `file:${store}`, '--http-listen', '0.0.0.0:0', '--grpc-app-key-file', join(dir, 'app-key')]);
    const running = agent;
    await running.waitForStatus((s) => s.persistedOutputs === 2);
    const other = `http://${externalAddress()}:${running.httpPort}`;
    const ask = (app: string, executor: string, proof: string): Promise<Response> =>
      fetch(`${other}/v1/app-token?app=${app}&executor=${executor}&proof=${proof}`, { method: 'POST' });

    // The executor of app A writes a proof into its own local dir and asks its node's agent.
    const proof = randomBytes(24).toString('base64url');
    await writeFile(join(execA, '.shuffle-agent-proof'), proof);
    const issued = await ask(APP_A, 'exec-a-1', proof);
    expect(issued.status).toBe(200);
    const token = ((await issued.json()) as { token: string }).token;
    await rm(join(execA, '.shuffle-agent-proof'));
    // App B's executor cannot claim A: it cannot write into A's directory, and its own proof is not A's.
    await writeFile(join(execB, '.shuffle-agent-proof'), proof);
    expect((await ask(APP_A, 'exec-b-1', proof)).status).toBe(403);
    expect((await ask(APP_A, 'exec-a-1', proof)).status, 'the proof file is gone').toBe(403);

    const asA = new ShuffleAgentClient({ target: `127.0.0.1:${running.grpcPort}`, token });
    const anonymous = new ShuffleAgentClient({ target: `127.0.0.1:${running.grpcPort}` });
    cleanups.push(async () => {
      asA.close();
      anonymous.close();
    });
    const fetchOf = (c: ShuffleAgentClient, app: string): Promise<Buffer> => c.fetchBlock({ app_id: app, shuffle_id: 0, map_id: 0, start_reduce_id: 0, end_reduce_id: 1 }, { deadline: Date.now() + 5000 });
    expect((await fetchOf(asA, APP_A)).equals(committedA.data.subarray(0, 100))).toBe(true);
    expect(await statusOf(fetchOf(asA, APP_B))).toBe('PERMISSION_DENIED');
    expect(await statusOf(fetchOf(anonymous, APP_A))).toBe('UNAUTHENTICATED');
    expect(await statusOf((async () => { for await (const p of asA.drain('tenant')) void p; })())).toBe('PERMISSION_DENIED');
    // The node never saw APP_GONE: not served, although its objects are in the store.
    const mint = (app: string): string => execFileSync(process.execPath, [CLI, 'app-token', '--key-file', join(dir, 'app-key'), '--app-id', app], { encoding: 'utf8' }).trim();
    // Minted offline with the same key: the same grant (its expiry differs, so the bytes do).
    const minted = new ShuffleAgentClient({ target: `127.0.0.1:${running.grpcPort}`, token: mint(APP_A) });
    cleanups.push(async () => minted.close());
    expect((await fetchOf(minted, APP_A)).equals(committedA.data.subarray(0, 100))).toBe(true);
    expect(await statusOf(fetchOf(minted, APP_B))).toBe('PERMISSION_DENIED');
    const asGone = new ShuffleAgentClient({ target: `127.0.0.1:${running.grpcPort}`, token: mint(APP_GONE) });
    cleanups.push(async () => asGone.close());
    expect(await statusOf(fetchOf(asGone, APP_GONE))).toBe('NOT_FOUND');
    await running.stop('SIGKILL');

    // With --grpc-serve-unseen-apps the operator asks for it.
    agent = await AgentProcess.start(['--local-dirs', local, '--local-dirs-layout', '{appId}/{executorId}', '--store', `file:${store}`, '--grpc-app-key-file', join(dir, 'app-key'), '--grpc-serve-unseen-apps']);
    const again = new ShuffleAgentClient({ target: `127.0.0.1:${agent.grpcPort}`, token: mint(APP_GONE) });
    cleanups.push(async () => again.close());
    expect((await fetchOf(again, APP_GONE)).equals(gone.data as Buffer)).toBe(true);
  });

  it('a sidecar serves its own app only, whatever the store holds', async () => {
    const { dir, local, store } = await setup();
    const mine = new SparkLikeExecutor([local]);
    const committed = await mine.commit({ shuffleId: 0, mapId: 0, partitions: [64] });
    const other = await writeOutput(join(dir, 'elsewhere'), APP_B, 0, '0', [50]);
    const fileStore = new FileStore(store);
    await storeOutput(fileStore, other.output);
    await fileStore.close();
    agent = await AgentProcess.start(['--local-dirs', local, '--store', `file:${store}`, '--app-id', APP_A]);
    await agent.waitForStatus((s) => s.persistedOutputs === 1);
    const c = new ShuffleAgentClient({ target: `127.0.0.1:${agent.grpcPort}` });
    cleanups.push(async () => c.close());
    const fetchOf = (app: string): Promise<Buffer> => c.fetchBlock({ app_id: app, shuffle_id: 0, map_id: 0, start_reduce_id: 0, end_reduce_id: 1 }, { deadline: Date.now() + 5000 });
    expect((await fetchOf(APP_A)).equals(committed.data)).toBe(true);
    expect(await statusOf(fetchOf(APP_B))).toBe('NOT_FOUND');
  });
});
