/**
 * AWS EC2 instance metadata (IMDSv2). Gets a session token (`PUT /latest/api/token`), renews it
 * before it expires (and at once on a 401), and polls:
 * - `spot/instance-action`: 404 when nothing is pending, else `{"action","time"}` -> `terminate`;
 * - `events/recommendations/rebalance`: 404 or `{"noticeTime"}` -> `rebalance` (an early warning).
 */
import type { Logger } from 'pino';
import { sleep } from '../../util/backoff.js';
import type { EmitNotice, SourceMetrics, TerminationNotice, TerminationSource } from '../notice.js';
import { baseUrl, FailureReporter, MetadataError, metadataRequest, parseJson } from './metadata-http.js';

export interface AwsImdsOptions {
  /** `http://169.254.169.254` in EC2; a local fake in tests. */
  endpoint: string;
  pollIntervalMs: number;
  requestTimeoutMs: number;
  /** Requested token lifetime; 21600 (6 h) is the maximum IMDS grants. */
  tokenTtlSeconds?: number;
  logger?: Logger;
  metrics?: SourceMetrics;
  now?: () => number;
}

const INSTANCE_ACTIONS = new Set(['terminate', 'stop', 'hibernate']);

export class AwsImdsSource implements TerminationSource {
  readonly name = 'aws' as const;
  private token: { value: string; expiresAt: number } | undefined;
  private readonly base: string;
  private readonly now: () => number;
  private readonly failures: FailureReporter;

  constructor(private readonly opts: AwsImdsOptions) {
    this.base = baseUrl(opts.endpoint);
    this.now = opts.now ?? Date.now;
    this.failures = new FailureReporter('aws', opts.logger, opts.metrics);
  }

  async run(emit: EmitNotice, signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        const { notices, errors } = await this.poll(signal);
        for (const notice of notices) emit(notice);
        if (errors.length === 0) this.failures.ok();
        for (const err of errors) this.failures.failed(err);
      } catch (err) {
        if (signal.aborted) break;
        this.failures.failed(err);
      }
      await sleep(this.opts.pollIntervalMs, signal);
    }
  }

  /** One poll of both documents: the notices found (none when nothing is pending) and what failed. */
  async poll(signal: AbortSignal): Promise<{ notices: TerminationNotice[]; errors: unknown[] }> {
    const notices: TerminationNotice[] = [];
    const errors: unknown[] = [];
    // Both documents every time: a broken one must not hide the other.
    for (const [path, parse] of [
      ['/latest/meta-data/spot/instance-action', parseInstanceAction],
      ['/latest/meta-data/events/recommendations/rebalance', parseRebalance],
    ] as const) {
      try {
        const body = await this.get(path, signal);
        if (body !== undefined) notices.push(parse(body));
      } catch (err) {
        if (signal.aborted) throw err;
        errors.push(err);
      }
    }
    return { notices, errors };
  }

  /** GET with the session token; undefined on 404. Renews the token once on a 401. */
  private async get(path: string, signal: AbortSignal): Promise<string | undefined> {
    for (let attempt = 1; ; attempt++) {
      const token = await this.sessionToken(signal);
      const res = await metadataRequest(this.base + path, { headers: { 'X-aws-ec2-metadata-token': token }, timeoutMs: this.opts.requestTimeoutMs }, signal);
      if (res.status === 200) return res.body;
      if (res.status === 404) return undefined;
      if (res.status === 401 && attempt === 1) {
        // The token expired or was revoked early (IMDS restarted): get a new one and ask again.
        this.token = undefined;
        continue;
      }
      throw new MetadataError(`GET ${path}: HTTP ${res.status}`, `http-${res.status}`);
    }
  }

  private async sessionToken(signal: AbortSignal): Promise<string> {
    const ttlSeconds = this.opts.tokenTtlSeconds ?? 21_600;
    const now = this.now();
    // Renew ahead of expiry: a minute early, or a quarter of the lifetime for short-lived tokens.
    const margin = Math.min(60_000, (ttlSeconds * 1000) / 4);
    if (this.token && now < this.token.expiresAt - margin) return this.token.value;
    const res = await metadataRequest(
      `${this.base}/latest/api/token`,
      { method: 'PUT', headers: { 'X-aws-ec2-metadata-token-ttl-seconds': String(ttlSeconds) }, timeoutMs: this.opts.requestTimeoutMs },
      signal,
    );
    if (res.status !== 200 || res.body.trim() === '') {
      this.token = undefined;
      throw new MetadataError(`PUT /latest/api/token: HTTP ${res.status}`, 'token');
    }
    this.token = { value: res.body.trim(), expiresAt: now + ttlSeconds * 1000 };
    return this.token.value;
  }
}

function parseInstanceAction(body: string): TerminationNotice {
  const doc = parseJson(body, 'spot/instance-action');
  const action = (doc as { action?: unknown } | null)?.action;
  const time = (doc as { time?: unknown } | null)?.time;
  const deadline = typeof time === 'string' ? Date.parse(time) : NaN;
  if (typeof action !== 'string' || !INSTANCE_ACTIONS.has(action) || Number.isNaN(deadline)) {
    throw new MetadataError(`spot/instance-action: unexpected document ${JSON.stringify(body.slice(0, 120))}`, 'malformed');
  }
  return { id: `instance-action:${action}:${time as string}`, kind: 'terminate', source: 'aws', deadline, detail: { action, time: time as string } };
}

function parseRebalance(body: string): TerminationNotice {
  const doc = parseJson(body, 'events/recommendations/rebalance');
  const noticeTime = (doc as { noticeTime?: unknown } | null)?.noticeTime;
  if (typeof noticeTime !== 'string' || Number.isNaN(Date.parse(noticeTime))) {
    throw new MetadataError(`events/recommendations/rebalance: unexpected document ${JSON.stringify(body.slice(0, 120))}`, 'malformed');
  }
  return { id: `rebalance:${noticeTime}`, kind: 'rebalance', source: 'aws', detail: { noticeTime } };
}
