import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AwsImdsSource } from '../../agent/lifecycle/sources/aws-imds.js';
import type { TerminationNotice } from '../../agent/lifecycle/notice.js';
import { FakeHttpServer, json } from '../support/fake-http.js';

/** IMDSv2 as documented: PUT /latest/api/token (TTL header) -> token; GETs need the token header. */
class FakeImds {
  readonly http = new FakeHttpServer();
  tokens = new Map<string, number>(); // token -> expiry (ms, real clock)
  issued = 0;
  instanceAction: { status: number; body?: unknown } = { status: 404 };
  rebalance: { status: number; body?: unknown } = { status: 404 };
  hang = false;

  async start(): Promise<this> {
    await this.http.start();
    this.http.handler = (req, res) => {
      if (this.hang) return; // never answers
      if (req.method === 'PUT' && req.url === '/latest/api/token') {
        const ttl = Number(req.headers['x-aws-ec2-metadata-token-ttl-seconds']);
        if (!Number.isInteger(ttl) || ttl < 1 || ttl > 21600) return void res.writeHead(400).end();
        const token = `token-${++this.issued}`;
        this.tokens.set(token, Date.now() + ttl * 1000);
        return void res.writeHead(200, { 'content-type': 'text/plain' }).end(token);
      }
      const token = req.headers['x-aws-ec2-metadata-token'];
      const expiry = typeof token === 'string' ? this.tokens.get(token) : undefined;
      if (expiry === undefined || expiry < Date.now()) return void res.writeHead(401).end();
      const doc = req.url === '/latest/meta-data/spot/instance-action' ? this.instanceAction : req.url === '/latest/meta-data/events/recommendations/rebalance' ? this.rebalance : { status: 404 };
      if (doc.body === undefined) return void res.writeHead(doc.status).end();
      json(res, doc.status, doc.body);
    };
    return this;
  }
}

let imds: FakeImds;
beforeEach(async () => {
  imds = await new FakeImds().start();
});
afterEach(async () => {
  await imds.http.close();
});

const signal = (): AbortSignal => new AbortController().signal;

describe('AWS IMDSv2 source against a local IMDS', () => {
  it('404 means no notice; the token is fetched once and sent on every GET', async () => {
    const source = new AwsImdsSource({ endpoint: imds.http.url, pollIntervalMs: 1000, requestTimeoutMs: 1000 });
    expect(await source.poll(signal())).toEqual({ notices: [], errors: [] });
    expect(await source.poll(signal())).toEqual({ notices: [], errors: [] });
    const puts = imds.http.requests.filter((r) => r.method === 'PUT');
    expect(puts).toHaveLength(1);
    expect(puts[0]?.headers['x-aws-ec2-metadata-token-ttl-seconds']).toBe('21600');
    const gets = imds.http.requests.filter((r) => r.method === 'GET');
    expect(gets).toHaveLength(4);
    for (const g of gets) expect(g.headers['x-aws-ec2-metadata-token']).toBe('token-1');
  });

  it('an instance-action becomes a terminate notice with its time as deadline; a rebalance recommendation a rebalance notice', async () => {
    imds.instanceAction = { status: 200, body: { action: 'terminate', time: '2026-11-22T01:02:03Z' } };
    imds.rebalance = { status: 200, body: { noticeTime: '2026-11-22T01:00:00Z' } };
    const source = new AwsImdsSource({ endpoint: imds.http.url + '/', pollIntervalMs: 1000, requestTimeoutMs: 1000 });
    const { notices, errors } = await source.poll(signal());
    expect(errors).toEqual([]);
    expect(notices).toEqual([
      { id: 'instance-action:terminate:2026-11-22T01:02:03Z', kind: 'terminate', source: 'aws', deadline: Date.parse('2026-11-22T01:02:03Z'), detail: { action: 'terminate', time: '2026-11-22T01:02:03Z' } },
      { id: 'rebalance:2026-11-22T01:00:00Z', kind: 'rebalance', source: 'aws', detail: { noticeTime: '2026-11-22T01:00:00Z' } },
    ]);
  });

  it('renews the token before it expires (fake clock) and at once when IMDS answers 401', async () => {
    let now = 0;
    const source = new AwsImdsSource({ endpoint: imds.http.url, pollIntervalMs: 1000, requestTimeoutMs: 1000, tokenTtlSeconds: 100, now: () => now });
    await source.poll(signal());
    now = 70_000; // margin is a quarter of the lifetime: 25 s, renewed after 75 s
    await source.poll(signal());
    expect(imds.issued).toBe(1);
    now = 76_000;
    await source.poll(signal());
    expect(imds.issued).toBe(2);
    // IMDS forgets every token (e.g. it restarted): the next GET gets 401, the source renews and retries.
    imds.tokens.clear();
    imds.instanceAction = { status: 200, body: { action: 'stop', time: '2026-11-22T01:02:03Z' } };
    const { notices, errors } = await source.poll(signal());
    expect(errors).toEqual([]);
    expect(notices.map((n) => n.id)).toEqual(['instance-action:stop:2026-11-22T01:02:03Z']);
    expect(imds.issued).toBe(3);
  });

  it('a token that really expires on the server is renewed (short real TTL)', async () => {
    const source = new AwsImdsSource({ endpoint: imds.http.url, pollIntervalMs: 1000, requestTimeoutMs: 1000, tokenTtlSeconds: 1, now: () => 0 });
    // With a frozen clock the source believes its token valid; the server expires it after 1 s.
    await source.poll(signal());
    await new Promise((r) => setTimeout(r, 1100));
    const { errors } = await source.poll(signal());
    expect(errors).toEqual([]);
    expect(imds.issued).toBe(2);
    expect(imds.http.requests.filter((r) => r.method === 'GET' && r.url.endsWith('instance-action')).length).toBe(3); // one 401, retried
  });

  it('malformed JSON, 5xx and a token failure are errors of their kind, never exceptions out of poll', async () => {
    const source = new AwsImdsSource({ endpoint: imds.http.url, pollIntervalMs: 1000, requestTimeoutMs: 1000 });
    imds.instanceAction = { status: 200, body: '{"action": "terminate", "ti' };
    imds.rebalance = { status: 503, body: 'busy' };
    let r = await source.poll(signal());
    expect(r.notices).toEqual([]);
    expect(r.errors.map((e) => (e as { kind: string }).kind)).toEqual(['malformed', 'http-503']);
    imds.instanceAction = { status: 200, body: { action: 'explode', time: 'soon' } };
    r = await source.poll(signal());
    expect((r.errors[0] as { kind: string }).kind).toBe('malformed');
    const broken = new AwsImdsSource({ endpoint: imds.http.url + '/nope', pollIntervalMs: 1000, requestTimeoutMs: 1000 });
    r = await broken.poll(signal());
    expect(r.errors.map((e) => (e as { kind: string }).kind)).toEqual(['token', 'token']);
  });

  it('the polling loop survives a hanging server, 5xx, malformed JSON and an absent server, then sees the notice', async () => {
    const errors = new ErrorLog();
    const source = new AwsImdsSource({ endpoint: imds.http.url, pollIntervalMs: 20, requestTimeoutMs: 100, metrics: errors });
    const controller = new AbortController();
    const notices: TerminationNotice[] = [];
    let gotNotice!: () => void;
    const noticed = new Promise<void>((r) => (gotNotice = r));
    imds.hang = true;
    const running = source.run((n) => {
      notices.push(n);
      gotNotice();
    }, controller.signal);
    await errors.seen('timeout');
    imds.hang = false;
    imds.instanceAction = { status: 500, body: 'oops' };
    await errors.seen('http-500');
    imds.instanceAction = { status: 200, body: 'not json' };
    await errors.seen('malformed');
    imds.instanceAction = { status: 200, body: { action: 'terminate', time: '2026-11-22T01:02:03Z' } };
    await noticed;
    controller.abort();
    await running;
    expect(notices[0]).toMatchObject({ kind: 'terminate', source: 'aws' });

    // Nothing listening at all: errors, no exception, stops on abort.
    const absentErrors = new ErrorLog();
    const absent = new AwsImdsSource({ endpoint: 'http://127.0.0.1:9', pollIntervalMs: 20, requestTimeoutMs: 100, metrics: absentErrors });
    const c2 = new AbortController();
    const run2 = absent.run(() => undefined, c2.signal);
    await absentErrors.seen('unreachable');
    await absentErrors.seen('unreachable');
    c2.abort();
    await expect(run2).resolves.toBeUndefined();
  });
});

/** Records metadata errors; `seen(kind)` resolves at the next error of that kind (event-driven). */
class ErrorLog {
  readonly kinds: string[] = [];
  private waiters: Array<{ kind: string; resolve: () => void }> = [];
  metadataError(_source: string, kind: string): void {
    this.kinds.push(kind);
    const ready = this.waiters.filter((w) => w.kind === kind);
    this.waiters = this.waiters.filter((w) => w.kind !== kind);
    for (const w of ready) w.resolve();
  }
  seen(kind: string): Promise<void> {
    return new Promise((resolve) => this.waiters.push({ kind, resolve }));
  }
}
