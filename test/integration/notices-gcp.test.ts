import type { ServerResponse } from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GcpMetadataSource } from '../../agent/lifecycle/sources/gcp-metadata.js';
import type { TerminationNotice } from '../../agent/lifecycle/notice.js';
import { FakeHttpServer } from '../support/fake-http.js';

/**
 * The GCP metadata server as documented: `instance/preempted` answers TRUE/FALSE with an ETag,
 * requires `Metadata-Flavor: Google`, and with `wait_for_change=true&last_etag=E` holds the
 * answer until the value's ETag differs from E (or `timeout_sec` passes).
 */
class FakeGce {
  readonly http = new FakeHttpServer();
  value = 'FALSE';
  etag = 'etag-0';
  failNext: Array<{ status: number; body: string }> = [];
  private held: Array<{ res: ServerResponse; timer: NodeJS.Timeout }> = [];

  async start(): Promise<this> {
    await this.http.start();
    this.http.handler = (req, res) => {
      const url = new URL(req.url, 'http://x');
      if (url.pathname !== '/computeMetadata/v1/instance/preempted') return void res.writeHead(404).end();
      if (req.headers['metadata-flavor'] !== 'Google') return void res.writeHead(403).end('Missing Metadata-Flavor:Google header.');
      const fail = this.failNext.shift();
      if (fail) return void res.writeHead(fail.status).end(fail.body);
      const lastEtag = url.searchParams.get('last_etag');
      if (url.searchParams.get('wait_for_change') === 'true' && lastEtag === this.etag) {
        const timeoutSec = Number(url.searchParams.get('timeout_sec') ?? '3600');
        const entry = { res, timer: setTimeout(() => this.answer(res), timeoutSec * 1000) };
        this.held.push(entry);
        return;
      }
      this.answer(res);
    };
    return this;
  }

  private answer(res: ServerResponse): void {
    this.held = this.held.filter((h) => h.res !== res);
    if (!res.writableEnded) res.writeHead(200, { etag: this.etag, 'metadata-flavor': 'Google', 'content-type': 'application/text' }).end(this.value);
  }

  /** Change the value: every held long-poll is answered at once. */
  set(value: string): void {
    this.value = value;
    this.etag = `etag-${Number(this.etag.slice(5)) + 1}`;
    for (const h of [...this.held]) {
      clearTimeout(h.timer);
      this.answer(h.res);
    }
  }

  get waiting(): number {
    return this.held.length;
  }
}

let gce: FakeGce;
beforeEach(async () => {
  gce = await new FakeGce().start();
});
afterEach(async () => {
  await gce.http.close();
});

describe('GCP preempted source against a local metadata server', () => {
  it('long-polls with wait_for_change and sees the preemption the moment it happens', async () => {
    let now = 1_000_000;
    // A poll interval far longer than the test: only the long-poll can explain a prompt notice.
    const source = new GcpMetadataSource({ endpoint: gce.http.url, pollIntervalMs: 60_000, requestTimeoutMs: 1000, now: () => now });
    const controller = new AbortController();
    const notices: TerminationNotice[] = [];
    let resolveNotice!: () => void;
    const noticed = new Promise<void>((r) => (resolveNotice = r));
    const running = source.run((n) => {
      notices.push(n);
      resolveNotice();
    }, controller.signal);
    await gce.http.next((r) => r.url.includes('wait_for_change=true'));
    expect(gce.waiting).toBe(1);
    now = 2_000_000;
    const t0 = Date.now();
    gce.set('TRUE');
    await noticed;
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(notices).toEqual([{ id: 'preempted', kind: 'terminate', source: 'gcp', deadline: 2_030_000, detail: { preempted: true } }]);
    const first = gce.http.requests[0];
    expect(first?.url).toBe('/computeMetadata/v1/instance/preempted');
    expect(first?.headers['metadata-flavor']).toBe('Google');
    const longPoll = new URL(gce.http.requests[1]?.url ?? '', 'http://x');
    expect(longPoll.searchParams.get('last_etag')).toBe('etag-0');
    // After the change it long-polls again (no busy loop: exactly one more request, held).
    await gce.http.next((r) => r.url.includes('last_etag=etag-1'));
    expect(gce.http.requests).toHaveLength(3);
    controller.abort();
    await running;
  });

  it('reports TRUE at start at once, and recovers from 5xx and a malformed answer', async () => {
    gce.set('TRUE');
    gce.failNext = [
      { status: 503, body: 'unavailable' },
      { status: 200, body: 'MAYBE' },
    ];
    const kinds: string[] = [];
    const source = new GcpMetadataSource({ endpoint: gce.http.url, pollIntervalMs: 10, requestTimeoutMs: 500, metrics: { metadataError: (_s, k) => kinds.push(k) } });
    const controller = new AbortController();
    const notice = await new Promise<TerminationNotice>((resolve) => void source.run(resolve, controller.signal));
    controller.abort();
    expect(notice).toMatchObject({ id: 'preempted', kind: 'terminate', source: 'gcp' });
    expect(kinds).toEqual(['http-503', 'malformed']);
  });

  it('a hanging metadata server costs one request timeout, then polling goes on', async () => {
    gce.set('TRUE');
    const handler = gce.http.handler;
    let swallowed = 0;
    gce.http.handler = (req, res) => {
      if (swallowed++ === 0) return; // never answers the first request
      handler(req, res);
    };
    const kinds: string[] = [];
    const source = new GcpMetadataSource({ endpoint: gce.http.url, pollIntervalMs: 10, requestTimeoutMs: 150, metrics: { metadataError: (_s, k) => kinds.push(k) } });
    const controller = new AbortController();
    const t0 = Date.now();
    const notice = await new Promise<TerminationNotice>((resolve) => void source.run(resolve, controller.signal));
    controller.abort();
    expect(notice.id).toBe('preempted');
    expect(kinds).toEqual(['timeout']);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
  });
});
