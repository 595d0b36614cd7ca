/** The lifecycle's HTTP endpoints on a real agent (in process, file store, empty local dir). */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolveOptions } from '../../agent/config/option-table.js';
import { RUN_OPTIONS } from '../../agent/config/run-options.js';
import { startAgent, type Agent } from '../../agent/main.js';
import { silentLogger } from '../../agent/observability/logger.js';

let dir: string;
let agent: Agent;
let base: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'notices-http-'));
  const { config } = resolveOptions(RUN_OPTIONS, ['--local-dirs', join(dir, 'local'), '--store', `file:${join(dir, 'store')}`, '--http-listen', '127.0.0.1:0', '--termination-sources', ''], {});
  agent = await startAgent({ ...config, appId: 'app-http' }, silentLogger());
  base = `http://127.0.0.1:${agent.http.port}`;
});
afterEach(async () => {
  await agent.close();
  await rm(dir, { recursive: true, force: true });
});

describe('lifecycle HTTP endpoints', () => {
  it('rejects an unknown state or a bad timeout with 400', async () => {
    expect((await fetch(`${base}/v1/status?wait=gone`)).status).toBe(400);
    expect((await fetch(`${base}/v1/status?wait=safe_to_exit&timeout=-1`)).status).toBe(400);
    expect((await fetch(`${base}/v1/status?wait=safe_to_exit&timeout=abc`)).status).toBe(400);
    expect((await fetch(`${base}/v1/drain`)).status).toBe(405);
  });

  it('answers at once when already in the state; 503 with timedOut after the timeout', async () => {
    const serving = await fetch(`${base}/v1/status?wait=serving&timeout=5`);
    expect(serving.status).toBe(200);
    const t0 = Date.now();
    const timedOut = await fetch(`${base}/v1/status?wait=safe_to_exit&timeout=0.2`);
    expect(timedOut.status).toBe(503);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    expect(await timedOut.json()).toMatchObject({ state: 'serving', waitedFor: 'safe_to_exit', timedOut: true });
  });

  it('drain=true starts the drain and waits for it in one GET (for an httpGet preStop hook)', async () => {
    const res = await fetch(`${base}/v1/status?wait=safe_to_exit&timeout=10&drain=true`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ state: 'safe_to_exit', timedOut: false, pendingOutputs: 0 });
    const again = await fetch(`${base}/v1/drain`, { method: 'POST' });
    expect(again.status).toBe(200);
    const body = (await again.json()) as { notices: Array<{ source: string; kind: string }> };
    expect(body.notices.map((n) => `${n.source}:${n.kind}`)).toEqual(['http:drain', 'http:drain']);
  });

  it('a client that goes away ends its wait (no listener left behind)', async () => {
    const before = agent.state.listenerCount('change');
    const controller = new AbortController();
    const waiting = fetch(`${base}/v1/status?wait=safe_to_exit&timeout=60`, { signal: controller.signal }).catch((err: unknown) => err);
    // The wait registers on the state's change event: observe that, then hang up.
    while (agent.state.listenerCount('change') === before) await new Promise((r) => setImmediate(r));
    controller.abort();
    await waiting;
    while (agent.state.listenerCount('change') !== before) await new Promise((r) => setImmediate(r));
    expect(agent.state.listenerCount('change')).toBe(before);
  });

  it('POST /v1/drain answers 202 while draining and reports the drain in the status', async () => {
    agent.writeback.add({
      id: 'app-http/0/1',
      appId: 'app-http',
      shuffleId: 0,
      mapId: '1',
      blockManagerDir: join(dir, 'gone'),
      indexPath: join(dir, 'gone', 'shuffle_0_1_0.index'),
      indexLength: 16,
      dataLength: 0,
      offsets: [0, 0],
      committedAt: Date.now(),
      foundAtStart: false,
    });
    const res = await fetch(`${base}/v1/drain`, { method: 'POST' });
    expect(res.status).toBe(202);
    expect(await res.json()).toMatchObject({ state: 'draining' });
  });
});
