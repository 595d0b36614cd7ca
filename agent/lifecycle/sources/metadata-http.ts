/**
 * What the cloud sources share: one HTTP request with its own timeout that also stops when the
 * source stops, and an error reporter that logs a failing endpoint once (not on every poll) and
 * says when it answers again.
 */
import type { Logger } from 'pino';
import { describeError } from '../../util/errors.js';
import type { SourceMetrics } from '../notice.js';
import { timeoutSignal } from '../../util/abort.js';

export interface MetadataResponse {
  status: number;
  headers: Headers;
  body: string;
}

export interface MetadataRequest {
  method?: 'GET' | 'PUT' | 'POST';
  headers?: Record<string, string>;
  body?: string;
  /** Per-request timeout (ms): a hanging server costs at most this. */
  timeoutMs: number;
}

export class MetadataError extends Error {
  constructor(
    message: string,
    /** `unreachable`, `timeout`, `http-<status>`, `malformed`, `token`. */
    readonly kind: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'MetadataError';
  }
}

/** One request; rejects with a MetadataError (`timeout`, `unreachable`), or an AbortError when `signal` aborts. */
export async function metadataRequest(url: string, request: MetadataRequest, signal: AbortSignal): Promise<MetadataResponse> {
  const until = timeoutSignal(request.timeoutMs, signal);
  try {
    const res = await fetch(url, {
      method: request.method ?? 'GET',
      headers: request.headers ?? {},
      ...(request.body !== undefined ? { body: request.body } : {}),
      signal: until.signal,
      redirect: 'error',
    });
    const body = await res.text();
    return { status: res.status, headers: res.headers, body };
  } catch (err) {
    if (signal.aborted) throw err;
    if (until.timedOut) throw new MetadataError(`${request.method ?? 'GET'} ${url}: no answer within ${request.timeoutMs} ms`, 'timeout', { cause: err });
    throw new MetadataError(`${request.method ?? 'GET'} ${url}: ${describeError(err)}`, 'unreachable', { cause: err });
  } finally {
    until.dispose();
  }
}

/** Logs the first failure of a run of failures at warn (later ones at debug) and the recovery. */
export class FailureReporter {
  private failing: string | undefined;

  constructor(
    private readonly source: string,
    private readonly logger?: Logger,
    private readonly metrics?: SourceMetrics,
  ) {}

  failed(err: unknown): void {
    const kind = err instanceof MetadataError ? err.kind : 'error';
    const message = describeError(err);
    this.metrics?.metadataError(this.source, kind);
    if (this.failing !== kind) this.logger?.warn({ source: this.source, kind, err: message }, 'termination source: metadata endpoint failed; will poll again');
    else this.logger?.debug({ source: this.source, kind, err: message }, 'termination source: metadata endpoint still failing');
    this.failing = kind;
  }

  ok(): void {
    if (this.failing !== undefined) this.logger?.info({ source: this.source }, 'termination source: metadata endpoint answers again');
    this.failing = undefined;
  }
}

/** Strip trailing slashes so paths can be appended. */
export function baseUrl(endpoint: string): string {
  return endpoint.replace(/\/+$/, '');
}

export function parseJson(body: string, what: string): unknown {
  try {
    return JSON.parse(body) as unknown;
  } catch (err) {
    throw new MetadataError(`${what}: malformed JSON ${JSON.stringify(body.slice(0, 80))}`, 'malformed', { cause: err });
  }
}
