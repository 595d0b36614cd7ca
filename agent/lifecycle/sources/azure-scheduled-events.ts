/**
 * Azure Scheduled Events (`/metadata/scheduledevents?api-version=2020-07-01`, header
 * `Metadata: true`). The service switches on at the first call, so the first poll happens at
 * start. `Preempt` and `Terminate` events become `terminate` notices (deadline: `NotBefore`, or
 * now once the event has `Started`). Once the agent is safe to exit an event can be acknowledged
 * with `POST {"StartRequests":[{"EventId":...}]}`, which lets Azure proceed without waiting.
 */
import type { Logger } from 'pino';
import { sleep } from '../../util/backoff.js';
import type { AcknowledgingSource, EmitNotice, SourceMetrics, TerminationNotice } from '../notice.js';
import { baseUrl, FailureReporter, MetadataError, metadataRequest, parseJson } from './metadata-http.js';

export interface AzureScheduledEventsOptions {
  /** `http://169.254.169.254` in Azure; a local fake in tests. */
  endpoint: string;
  pollIntervalMs: number;
  requestTimeoutMs: number;
  /** Event types that mean this machine goes away. */
  eventTypes?: readonly string[];
  logger?: Logger;
  metrics?: SourceMetrics;
  now?: () => number;
}

export const AZURE_API_PATH = '/metadata/scheduledevents?api-version=2020-07-01';

interface AzureEvent {
  EventId: string;
  EventType: string;
  EventStatus?: string;
  NotBefore?: string;
  Resources?: string[];
}

export class AzureScheduledEventsSource implements AcknowledgingSource {
  readonly name = 'azure' as const;
  private readonly failures: FailureReporter;
  private readonly url: string;
  private readonly now: () => number;
  private readonly acknowledged = new Set<string>();

  constructor(private readonly opts: AzureScheduledEventsOptions) {
    this.failures = new FailureReporter('azure', opts.logger, opts.metrics);
    this.url = baseUrl(opts.endpoint) + AZURE_API_PATH;
    this.now = opts.now ?? Date.now;
  }

  async run(emit: EmitNotice, signal: AbortSignal): Promise<void> {
    const types = new Set(this.opts.eventTypes ?? ['Preempt', 'Terminate']);
    while (!signal.aborted) {
      try {
        for (const event of await this.events(signal)) {
          if (!types.has(event.EventType)) continue;
          const notBefore = event.NotBefore ? Date.parse(event.NotBefore) : NaN;
          emit({
            id: event.EventId,
            kind: 'terminate',
            source: 'azure',
            deadline: Number.isNaN(notBefore) ? this.now() : notBefore,
            detail: { eventType: event.EventType, eventStatus: event.EventStatus ?? '', notBefore: event.NotBefore ?? '' },
          });
        }
        this.failures.ok();
      } catch (err) {
        if (signal.aborted) break;
        this.failures.failed(err);
      }
      await sleep(this.opts.pollIntervalMs, signal);
    }
  }

  /** The current events document, validated. */
  async events(signal: AbortSignal): Promise<AzureEvent[]> {
    const res = await metadataRequest(this.url, { headers: { Metadata: 'true' }, timeoutMs: this.opts.requestTimeoutMs }, signal);
    if (res.status !== 200) throw new MetadataError(`GET scheduledevents: HTTP ${res.status}`, `http-${res.status}`);
    const doc = parseJson(res.body, 'scheduledevents');
    const events = (doc as { Events?: unknown } | null)?.Events;
    if (!Array.isArray(events)) throw new MetadataError('scheduledevents: no Events array', 'malformed');
    const valid: AzureEvent[] = [];
    for (const e of events as unknown[]) {
      const ev = e as Partial<AzureEvent> | null;
      if (typeof ev?.EventId !== 'string' || typeof ev.EventType !== 'string') throw new MetadataError(`scheduledevents: bad event ${JSON.stringify(e)}`, 'malformed');
      valid.push(ev as AzureEvent);
    }
    return valid;
  }

  /** Approve the event (StartRequests), once; retried a few times, never throws for the endpoint. */
  async acknowledge(notice: TerminationNotice, signal: AbortSignal): Promise<void> {
    if (notice.source !== 'azure' || this.acknowledged.has(notice.id)) return;
    const body = JSON.stringify({ StartRequests: [{ EventId: notice.id }] });
    for (let attempt = 1; attempt <= 3 && !signal.aborted; attempt++) {
      try {
        const res = await metadataRequest(
          this.url,
          { method: 'POST', headers: { Metadata: 'true', 'content-type': 'application/json' }, body, timeoutMs: this.opts.requestTimeoutMs },
          signal,
        );
        if (res.status >= 200 && res.status < 300) {
          this.acknowledged.add(notice.id);
          this.opts.logger?.info({ eventId: notice.id }, 'azure scheduled event acknowledged');
          return;
        }
        throw new MetadataError(`POST scheduledevents: HTTP ${res.status}`, `http-${res.status}`);
      } catch (err) {
        if (signal.aborted) return;
        this.failures.failed(err);
        await sleep(this.opts.pollIntervalMs, signal);
      }
    }
  }
}
