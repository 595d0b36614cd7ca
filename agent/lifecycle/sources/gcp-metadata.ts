/**
 * GCP metadata server: `instance/preempted` (`TRUE` / `FALSE`, header `Metadata-Flavor: Google`).
 * Reads the value once, then long-polls with `wait_for_change=true&last_etag=...` so a change is
 * seen the moment it happens without polling. Spot VMs get about 30 s after the notice.
 */
import type { Logger } from 'pino';
import { sleep } from '../../util/backoff.js';
import type { EmitNotice, SourceMetrics, TerminationSource } from '../notice.js';
import { baseUrl, FailureReporter, MetadataError, metadataRequest } from './metadata-http.js';

export interface GcpMetadataOptions {
  /** `http://metadata.google.internal` in GCE; a local fake in tests. */
  endpoint: string;
  /** Pause after a failure, or after a long-poll that came back without a change. */
  pollIntervalMs: number;
  requestTimeoutMs: number;
  /** How long one long-poll may wait on the server (`timeout_sec`). */
  longPollSeconds?: number;
  /** Time between the notice and power-off, when the server does not say (30 s for Spot VMs). */
  noticeLeadMs?: number;
  logger?: Logger;
  metrics?: SourceMetrics;
  now?: () => number;
}

const PATH = '/computeMetadata/v1/instance/preempted';

export class GcpMetadataSource implements TerminationSource {
  readonly name = 'gcp' as const;
  private readonly failures: FailureReporter;
  private readonly now: () => number;

  constructor(private readonly opts: GcpMetadataOptions) {
    this.failures = new FailureReporter('gcp', opts.logger, opts.metrics);
    this.now = opts.now ?? Date.now;
  }

  async run(emit: EmitNotice, signal: AbortSignal): Promise<void> {
    const longPoll = this.opts.longPollSeconds ?? 60;
    let etag: string | undefined;
    let value: boolean | undefined;
    while (!signal.aborted) {
      const waiting = etag !== undefined;
      const query = waiting ? `?wait_for_change=true&last_etag=${encodeURIComponent(etag as string)}&timeout_sec=${longPoll}` : '';
      try {
        // The long-poll legitimately takes up to `timeout_sec`: the request timeout comes on top.
        const timeoutMs = waiting ? longPoll * 1000 + this.opts.requestTimeoutMs : this.opts.requestTimeoutMs;
        const res = await metadataRequest(`${baseUrl(this.opts.endpoint)}${PATH}${query}`, { headers: { 'Metadata-Flavor': 'Google' }, timeoutMs }, signal);
        if (res.status !== 200) throw new MetadataError(`GET ${PATH}: HTTP ${res.status}`, `http-${res.status}`);
        const text = res.body.trim().toUpperCase();
        if (text !== 'TRUE' && text !== 'FALSE') throw new MetadataError(`GET ${PATH}: unexpected value ${JSON.stringify(res.body.slice(0, 40))}`, 'malformed');
        this.failures.ok();
        const preempted = text === 'TRUE';
        const changed = preempted !== value;
        value = preempted;
        etag = res.headers.get('etag') ?? undefined;
        // The deadline is counted from the first sighting: emit once per change to TRUE.
        if (preempted && changed) {
          emit({ id: 'preempted', kind: 'terminate', source: 'gcp', deadline: this.now() + (this.opts.noticeLeadMs ?? 30_000), detail: { preempted: true } });
        }
        // Without an ETag the server cannot long-poll; an unchanged answer to a long-poll means it
        // timed out or ignores `wait_for_change`: pause either way rather than spin.
        if (etag === undefined || (waiting && !changed)) await sleep(this.opts.pollIntervalMs, signal);
      } catch (err) {
        if (signal.aborted) break;
        this.failures.failed(err);
        etag = undefined;
        await sleep(this.opts.pollIntervalMs, signal);
      }
    }
  }
}
