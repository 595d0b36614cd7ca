import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AZURE_API_PATH, AzureScheduledEventsSource } from '../../agent/lifecycle/sources/azure-scheduled-events.js';
import type { TerminationNotice } from '../../agent/lifecycle/notice.js';
import { FakeHttpServer, json } from '../support/fake-http.js';

/** Azure Scheduled Events as documented: `Metadata: true` required (400 without), GET the
 * document, POST `{"StartRequests":[{"EventId"}]}` to approve an event. */
class FakeAzure {
  readonly http = new FakeHttpServer();
  events: unknown[] = [];
  incarnation = 1;
  raw: string | undefined;
  readonly approved: string[] = [];

  async start(): Promise<this> {
    await this.http.start();
    this.http.handler = (req, res) => {
      const url = new URL(req.url, 'http://x');
      if (url.pathname !== '/metadata/scheduledevents') return void res.writeHead(404).end();
      if (req.headers.metadata !== 'true') return json(res, 400, { error: 'Bad request. Required metadata header not specified' });
      if (url.searchParams.get('api-version') !== '2020-07-01') return json(res, 400, { error: 'Bad request. api-version is invalid or was not specified' });
      if (req.method === 'POST') {
        const body = JSON.parse(req.body) as { StartRequests: Array<{ EventId: string }> };
        for (const s of body.StartRequests) this.approved.push(s.EventId);
        this.events = this.events.filter((e) => !this.approved.includes((e as { EventId: string }).EventId));
        this.incarnation++;
        return void res.writeHead(200).end();
      }
      if (this.raw !== undefined) return void res.writeHead(200, { 'content-type': 'application/json' }).end(this.raw);
      json(res, 200, { DocumentIncarnation: this.incarnation, Events: this.events });
    };
    return this;
  }
}

const preempt = {
  EventId: '602d9444-d2cd-49c7-8624-8643e7171297',
  EventType: 'Preempt',
  ResourceType: 'VirtualMachine',
  Resources: ['spark-node-3'],
  EventStatus: 'Scheduled',
  NotBefore: 'Sun, 22 Nov 2026 01:02:03 GMT',
  Description: 'Spot eviction',
  EventSource: 'Platform',
  DurationInSeconds: -1,
};

let azure: FakeAzure;
beforeEach(async () => {
  azure = await new FakeAzure().start();
});
afterEach(async () => {
  await azure.http.close();
});

describe('Azure Scheduled Events source against a local IMDS', () => {
  it('the fake, like Azure, refuses a request without `Metadata: true`', async () => {
    const res = await fetch(azure.http.url + AZURE_API_PATH);
    expect(res.status).toBe(400);
  });

  it('calls at start (switching the service on), sends the header, turns Preempt/Terminate into notices', async () => {
    azure.events = [
      preempt,
      { ...preempt, EventId: 'freeze-1', EventType: 'Freeze' },
      { ...preempt, EventId: 'term-1', EventType: 'Terminate', EventStatus: 'Started', NotBefore: '' },
    ];
    const source = new AzureScheduledEventsSource({ endpoint: azure.http.url, pollIntervalMs: 60_000, requestTimeoutMs: 1000, now: () => 42 });
    const controller = new AbortController();
    const notices: TerminationNotice[] = [];
    let done!: () => void;
    const two = new Promise<void>((r) => (done = r));
    const running = source.run((n) => {
      notices.push(n);
      if (notices.length === 2) done();
    }, controller.signal);
    await two; // arrives without waiting the 60 s poll interval: the first call is at start
    controller.abort();
    await running;
    expect(azure.http.requests[0]?.headers.metadata).toBe('true');
    expect(azure.http.requests.every((r) => r.headers.metadata === 'true')).toBe(true);
    expect(notices).toEqual([
      { id: preempt.EventId, kind: 'terminate', source: 'azure', deadline: Date.parse('2026-11-22T01:02:03Z'), detail: { eventType: 'Preempt', eventStatus: 'Scheduled', notBefore: preempt.NotBefore } },
      { id: 'term-1', kind: 'terminate', source: 'azure', deadline: 42, detail: { eventType: 'Terminate', eventStatus: 'Started', notBefore: '' } },
    ]);
  });

  it('acknowledges with a StartRequests POST, once per event', async () => {
    azure.events = [preempt];
    const source = new AzureScheduledEventsSource({ endpoint: azure.http.url, pollIntervalMs: 10, requestTimeoutMs: 1000 });
    const notice: TerminationNotice = { id: preempt.EventId, kind: 'terminate', source: 'azure' };
    await source.acknowledge(notice, new AbortController().signal);
    await source.acknowledge(notice, new AbortController().signal);
    const posts = azure.http.requests.filter((r) => r.method === 'POST');
    expect(posts).toHaveLength(1);
    expect(JSON.parse(posts[0]?.body ?? '')).toEqual({ StartRequests: [{ EventId: preempt.EventId }] });
    expect(posts[0]?.headers.metadata).toBe('true');
    expect(posts[0]?.headers['content-type']).toBe('application/json');
    expect(azure.approved).toEqual([preempt.EventId]);
  });

  it('malformed documents and a hanging server are errors; polling goes on and finds the event', async () => {
    azure.raw = '{"DocumentIncarnation": 1, "Events": ';
    const kinds: string[] = [];
    let hung = false;
    const source = new AzureScheduledEventsSource({ endpoint: azure.http.url, pollIntervalMs: 10, requestTimeoutMs: 100, metrics: { metadataError: (_s, k) => kinds.push(k) } });
    const controller = new AbortController();
    const handler = azure.http.handler;
    azure.http.handler = (req, res) => {
      if (kinds.includes('malformed') && !hung) {
        hung = true; // swallow one request: the source must time out and poll again
        azure.raw = undefined;
        azure.events = [preempt];
        return;
      }
      handler(req, res);
    };
    const notice = await new Promise<TerminationNotice>((resolve) => void source.run(resolve, controller.signal));
    controller.abort();
    expect(notice.id).toBe(preempt.EventId);
    expect(kinds).toContain('malformed');
    expect(kinds).toContain('timeout');
  });
});
