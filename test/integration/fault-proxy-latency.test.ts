/**
 * The fault proxy as bench:spark-read's latency proxy: every forwarded answer is held back by
 * `delayMs` (S3's first byte), bodies pass through unchanged, and the plan sees every request
 * (the bench counts requests by method and object there).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { FaultProxy, type ProxiedRequest } from '../kit/fault-proxy.js';

let upstream: Server;
let proxy: FaultProxy;
const seen: ProxiedRequest[] = [];

beforeAll(async () => {
  upstream = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`${req.method} ${req.url}`);
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  proxy = await FaultProxy.start(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, (req) => {
    seen.push(req);
    return undefined;
  });
});

afterAll(async () => {
  await proxy?.close();
  await new Promise<void>((r) => upstream?.close(() => r()));
});

async function timed(method: string, path: string): Promise<{ ms: number; body: string }> {
  const t0 = performance.now();
  const r = await fetch(`${proxy.endpoint}${path}`, { method });
  const body = await r.text();
  return { ms: performance.now() - t0, body };
}

it('holds every answer back by delayMs and forwards it unchanged', async () => {
  proxy.delayMs = 0;
  const fast = await timed('GET', '/b/k.index');
  proxy.delayMs = 300;
  const slow = await Promise.all([timed('GET', '/b/k.data'), timed('HEAD', '/b/k.data'), timed('GET', '/b/_heartbeat')]);
  expect(fast.body).toBe('GET /b/k.index');
  expect(slow[0].body).toBe('GET /b/k.data');
  for (const s of slow) expect(s.ms).toBeGreaterThanOrEqual(295);
  // Concurrent requests wait side by side, not one after another (that would take 900 ms).
  expect(Math.max(...slow.map((s) => s.ms))).toBeLessThan(3 * 300);
  expect(seen.map((r) => `${r.method} ${r.url}`)).toEqual(['GET /b/k.index', 'GET /b/k.data', 'HEAD /b/k.data', 'GET /b/_heartbeat']);
  expect(proxy.forwarded).toBe(4);
});
