/**
 * Safe-exit signals end to end, with the built CLI: `wait-safe-exit`, the long-poll for an httpGet
 * preStop hook, and a cloud notice (a local IMDS) after which the agent is safe to exit, writes
 * the marker file, and keeps running and serving until SIGTERM.
 */
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SparkLikeExecutor } from '../kit/spark-writer.js';
import { AgentProcess } from '../kit/agent-process.js';
import { CliProcess } from '../kit/cli-process.js';
import { FakeHttpServer, json } from '../support/fake-http.js';
import { ShuffleAgentClient } from '../../agent/serve/client.js';
import type { AgentStatus, DrainProgressMessage } from '../../agent/serve/proto.js';
import { commitOutputs, storedIntact, type Committed } from '../support/committed-outputs.js';
import { STORE_FIXTURES, type StoreFixture } from '../kit/store-fixtures.js';

const APP = 'app-safe';
const MiB = 1024 * 1024;
const exists = (p: string): Promise<boolean> => stat(p).then(() => true, () => false);

describe.each(STORE_FIXTURES)('safe exit with the $name store', ({ make }) => {
  let dir: string;
  let store: StoreFixture;
  let executor: SparkLikeExecutor;
  const running: CliProcess[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'e2e-safe-'));
    store = await make(dir);
    executor = new SparkLikeExecutor([join(dir, 'local')]);
  });
  afterEach(async () => {
    for (const p of running.splice(0)) {
      p.kill('SIGKILL');
      await p.exited;
    }
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function agentWith(args: string[]): Promise<AgentProcess> {
    const a = await AgentProcess.start(['--local-dirs', join(dir, 'local'), ...store.args, '--app-id', APP, ...args], { env: store.env });
    running.push(a);
    return a;
  }

  function cli(args: string[]): CliProcess {
    const p = new CliProcess(args);
    running.push(p);
    return p;
  }

  const allStored = async (outputs: Committed[]): Promise<boolean> => (await Promise.all(outputs.map((o) => storedIntact(store, APP, o)))).every(Boolean);

  it('wait-safe-exit exits 6 on timeout while outputs are pending, and 0 only once everything is stored', async () => {
    await store.down();
    const committed = await commitOutputs(executor, APP, { count: 12, bytes: 2 * MiB, shuffles: 2 });
    const agent = await agentWith(['--safe-exit-file', join(dir, 'safe.json')]);

    const short = cli(['wait-safe-exit', '--http', agent.url, '--timeout', '0.5']);
    expect((await short.exited).code).toBe(6);
    expect((await agent.status()).state).toBe('draining'); // it requested the drain

    // The httpGet preStop form: 503 on timeout, while not safe.
    const res = await fetch(`${agent.url}/v1/status?wait=safe_to_exit&timeout=0.2`);
    expect(res.status).toBe(503);
    expect(((await res.json()) as { timedOut: boolean }).timedOut).toBe(true);

    const waiting = cli(['wait-safe-exit', '--http', agent.url, '--timeout', '30']);
    const longPoll = fetch(`${agent.url}/v1/status?wait=safe_to_exit&timeout=30`);
    // Both wait on the agent's state; the store is still down, so neither may finish. (Proving
    // that something does NOT happen needs a window; the exit-after-up check below is the strict one.)
    const early = await Promise.race([waiting.exited.then(() => 'exited'), new Promise((r) => setTimeout(() => r('still waiting'), 300))]);
    expect(early).toBe('still waiting');
    expect(await exists(join(dir, 'safe.json'))).toBe(false);
    const upAt = Date.now();
    await store.up();
    const exit = await waiting.exited;
    expect(exit.code).toBe(0);
    expect(exit.at).toBeGreaterThan(upAt);
    // At that moment everything is in the store, byte for byte, and the marker is there.
    expect(await allStored(committed)).toBe(true);
    expect(await exists(join(dir, 'safe.json'))).toBe(true);
    const polled = await longPoll;
    expect(polled.status).toBe(200);
    expect(((await polled.json()) as { state: string }).state).toBe('safe_to_exit');

    agent.kill('SIGTERM');
    expect((await agent.exited).code).toBe(0);
  });

  it('after an AWS spot notice: safe_to_exit, marker written, still serving; new outputs go back to draining; exit 0 on SIGTERM', async () => {
    const imds = await new FakeHttpServer().start();
    let action: unknown;
    imds.handler = (req, res) => {
      if (req.method === 'PUT' && req.url === '/latest/api/token') return void res.writeHead(200).end('tok');
      if (req.headers['x-aws-ec2-metadata-token'] !== 'tok') return void res.writeHead(401).end();
      if (req.url === '/latest/meta-data/spot/instance-action' && action) return json(res, 200, action);
      res.writeHead(404).end();
    };
    try {
      const marker = join(dir, 'marker', 'safe.json');
      const committed = await commitOutputs(executor, APP, { count: 8, bytes: 4 * MiB, shuffles: 2 });
      const agent = await agentWith([
        '--termination-sources',
        'sigterm,aws',
        '--aws-metadata-endpoint',
        imds.url,
        '--notice-poll-interval',
        '0.05',
        '--safe-exit-file',
        marker,
      ]);
      expect((await agent.status()).state).toBe('serving');
      const time = new Date(Date.now() + 120_000).toISOString().replace(/\.\d+Z$/, 'Z');
      action = { action: 'terminate', time };
      const safe = await fetch(`${agent.url}/v1/status?wait=safe_to_exit&timeout=20`);
      expect(safe.status).toBe(200);
      const summary = JSON.parse(await readFile(marker, 'utf8')) as { state: string; pendingOutputs: number; notices: Array<{ source: string; kind: string; deadline: string }> };
      expect(summary.state).toBe('safe_to_exit');
      expect(summary.pendingOutputs).toBe(0);
      expect(summary.notices[0]).toMatchObject({ source: 'aws', kind: 'terminate', deadline: time.replace('Z', '.000Z') });
      expect(await allStored(committed)).toBe(true);

      // Still running and serving: more polls of the same notice change nothing.
      await imds.next((r) => r.url.endsWith('instance-action'));
      await imds.next((r) => r.url.endsWith('instance-action'));
      expect((await fetch(`${agent.url}/healthz`)).status).toBe(200);
      const status = (await agent.status());
      expect(status.state).toBe('safe_to_exit');
      expect(status.notices).toHaveLength(1);

      // Spark commits another output: back to draining (marker removed), then safe again.
      const drainingAgain = agent.log((l) => l.msg === 'state changed' && l.to === 'draining' && l.from === 'safe_to_exit');
      const more = await commitOutputs(executor, APP, { count: 1, bytes: MiB, firstMapId: 100 });
      await drainingAgain;
      const again = await fetch(`${agent.url}/v1/status?wait=safe_to_exit&timeout=20`);
      expect(again.status).toBe(200);
      expect(await allStored(more)).toBe(true);
      expect(await exists(marker)).toBe(true);
      expect(agent.lines.filter((l) => l.msg === 'state changed' && l.to === 'safe_to_exit')).toHaveLength(2);

      agent.kill('SIGTERM');
      const exit = await agent.exited;
      expect(exit.code).toBe(0);
    } finally {
      await imds.close();
    }
  });

  it('after an Azure Preempt event: safe_to_exit, then the event is acknowledged with StartRequests', async () => {
    const azure = await new FakeHttpServer().start();
    const eventId = 'c9a2f2a4-7e5c-4b3b-9a4e-2f7c5b1d0a11';
    azure.handler = (req, res) => {
      if (req.headers.metadata !== 'true') return json(res, 400, { error: 'Bad request. Required metadata header not specified' });
      if (req.method === 'POST') return void res.writeHead(200).end();
      json(res, 200, {
        DocumentIncarnation: 2,
        Events: [{ EventId: eventId, EventType: 'Preempt', ResourceType: 'VirtualMachine', Resources: ['vm'], EventStatus: 'Scheduled', NotBefore: new Date(Date.now() + 30_000).toUTCString(), Description: '', EventSource: 'Platform', DurationInSeconds: -1 }],
      });
    };
    try {
      const committed = await commitOutputs(executor, APP, { count: 4, bytes: MiB });
      const ack = azure.next((r) => r.method === 'POST');
      const agent = await agentWith(['--termination-sources', 'sigterm,azure', '--azure-metadata-endpoint', azure.url, '--notice-poll-interval', '0.05']);
      const posted = await ack;
      expect(JSON.parse(posted.body)).toEqual({ StartRequests: [{ EventId: eventId }] });
      expect((await agent.status()).state).toBe('safe_to_exit');
      expect(await allStored(committed)).toBe(true);
      expect(azure.requests.filter((r) => r.headers.metadata !== 'true')).toEqual([]);
      agent.kill('SIGTERM');
      expect((await agent.exited).code).toBe(0);
    } finally {
      await azure.close();
    }
  });

  it('gRPC: Drain streams progress until done once everything is stored; WatchStatus sees every state', async () => {
    await store.down();
    const committed = await commitOutputs(executor, APP, { count: 6, bytes: MiB });
    const agent = await agentWith(['--safe-exit-file', join(dir, 'safe.json')]);
    const grpcLine = await agent.log((l) => l.msg === 'grpc listening');
    const client = new ShuffleAgentClient({ target: `127.0.0.1:${(grpcLine.grpc as { port: number }).port}` });
    try {
      expect((await client.getStatus()).state).toBe('AGENT_STATE_SERVING');
      const states: string[] = [];
      const watch = client.watchStatus();
      const watched = new Promise<void>((resolve) => {
        watch.on('data', (s: AgentStatus) => states.push(s.state));
        watch.on('error', () => resolve());
        watch.on('end', () => resolve());
      });
      const progress: DrainProgressMessage[] = [];
      const drain = client.drain('e2e');
      const drained = new Promise<void>((resolve, reject) => {
        drain.on('data', (p: DrainProgressMessage) => progress.push(p));
        drain.on('end', () => resolve());
        drain.on('error', reject);
      });
      await agent.log((l) => l.msg === 'drain started');
      const draining = await client.getStatus();
      expect(draining.state).toBe('AGENT_STATE_DRAINING');
      expect(Number(draining.pending_outputs)).toBe(committed.length);
      expect(draining.reason).toBe('grpc drain');
      await store.up();
      await drained;
      expect(progress.at(-1)?.done).toBe(true);
      expect(progress.filter((p) => p.done)).toHaveLength(1);
      expect(Number(progress.at(-1)?.status.pending_outputs)).toBe(0);
      expect(await allStored(committed)).toBe(true);
      agent.kill('SIGTERM');
      expect((await agent.exited).code).toBe(0);
      await watched;
      expect(states.slice(0, 3)).toEqual(['AGENT_STATE_SERVING', 'AGENT_STATE_DRAINING', 'AGENT_STATE_SAFE_TO_EXIT']);
    } finally {
      client.close();
    }
  });
});
