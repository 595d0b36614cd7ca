/**
 * The store goes down for 60 s under a running agent (the built CLI, s3rver behind a proxy that
 * resets every connection while "down"): `/readyz` turns 503 within 10 s and says why, the agent
 * logs a few lines per minute per distinct error (not one per retry), and once the store is back
 * every output committed before and during the outage is stored byte for byte and `/readyz` is
 * 200 again.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SparkLikeExecutor } from '../kit/spark-writer.js';
import { AgentProcess } from '../kit/agent-process.js';
import { commitOutputs, storedIntact, type Committed } from '../support/committed-outputs.js';
import { until } from '../kit/wait.js';
import type { LogLine } from '../kit/cli-process.js';
import { s3rverStoreFixture, type StoreFixture } from '../kit/store-fixtures.js';

const APP = 'app-store-down';
const DOWN_MS = 60_000;

describe('store down for 60 s', () => {
  let dir: string;
  let store: StoreFixture;
  let agent: AgentProcess | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'e2e-store-down-'));
    store = await s3rverStoreFixture(dir);
  });
  afterAll(async () => {
    await agent?.stop('SIGKILL');
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  const readyz = async (): Promise<{ status: number; body: string }> => {
    const res = await fetch(`${(agent as AgentProcess).url}/readyz`);
    return { status: res.status, body: await res.text() };
  };

  it('readiness says so within 10 s, logs stay few, and everything is stored after', { timeout: 180_000 }, async () => {
    const executor = new SparkLikeExecutor([join(dir, 'local')]);
    agent = await AgentProcess.start(['--local-dirs', join(dir, 'local'), ...store.args, '--app-id', APP], { env: store.env });
    await until(async () => (await readyz()).status === 200, 'ready with the store up');
    const before = await commitOutputs(executor, APP, { count: 3, bytes: 64 * 1024 });
    await until(async () => (await Promise.all(before.map((o) => storedIntact(store, APP, o)))).every(Boolean), 'outputs stored while up');

    await store.down();
    const downAt = Date.now();
    const linesBefore = agent.lines.length;
    // Written while the store is down: retried, never lost.
    const during: Committed[] = await commitOutputs(executor, APP, { count: 5, bytes: 256 * 1024, firstMapId: 100 });
    const notReady = await until(
      async () => {
        const r = await readyz();
        return r.status === 503 ? r : undefined;
      },
      '/readyz 503 after the store went down',
      15_000,
      100,
    );
    expect(Date.now() - downAt).toBeLessThan(10_000);
    expect(notReady.body).toMatch(/^not ready: store does not answer \(\w+\)/);
    const open = (await (await fetch(`${agent.url}/v1/status`)).json()) as { ready: boolean; notReadyReason: string; storeHealth: { ok: boolean } };
    expect(open.ready).toBe(false);
    expect(open.notReadyReason).toMatch(/store does not answer/);
    expect(open.storeHealth.ok).toBe(false);

    // The outage lasts its minute; the agent keeps retrying meanwhile.
    await new Promise((r) => setTimeout(r, Math.max(0, DOWN_MS - (Date.now() - downAt))));
    const outageLines = agent.lines.slice(linesBefore);
    await store.up();

    // A few lines per minute per distinct warning or error, not one per retry.
    const perKind = new Map<string, number>();
    for (const l of outageLines.filter((x: LogLine) => x.level === 'warn' || x.level === 'error')) {
      const err = l.err as { code?: string } | undefined;
      const key = `${l.msg} ${l.code ?? err?.code ?? ''}`;
      perKind.set(key, (perKind.get(key) ?? 0) + 1);
    }
    expect(perKind.size).toBeGreaterThan(0);
    for (const [key, n] of perKind) expect(n, key).toBeLessThanOrEqual(3);

    // Back: everything is stored, and readiness is 200 again.
    await until(async () => (await Promise.all([...before, ...during].map((o) => storedIntact(store, APP, o)))).every(Boolean), 'every output stored after the store came back', 40_000, 200);
    await until(async () => (await readyz()).status === 200, '/readyz 200 after the store came back', 15_000, 100);
    const status = await agent.status();
    expect(status.pendingOutputs).toBe(0);
    // The retries held back are counted, not lost: one line once the window of the first ends.
    const repeated = await agent.waitForLog((l) => l.msg === 'write-back failed; will retry (repeated)', 30_000);
    expect(Number(repeated.repeated)).toBeGreaterThan(0);
  });
});
