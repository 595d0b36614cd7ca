/**
 * The upload path's own S3 request: one SigV4-signed PUT (PutObject or UploadPart) straight on
 * node:http(s), for S3Store's hot path. Measured here against a local HTTP server, the SDK's
 * `client.send(PutObjectCommand)` costs about 1.0 ms of CPU per request (middleware stack,
 * schema serialisation, endpoint rules, signing, `Expect: 100-continue` on large bodies) and this
 * about 0.3 ms; with thousands of small outputs that is the larger part of the agent's CPU.
 * Everything else (multipart control, HEAD, GET, lists, deletes) stays on the SDK.
 *
 * Same contract as the SDK for the store's error handling: a non-2xx answer rejects with an error
 * carrying the S3 error `Code` (also as `name`) and `$metadata.httpStatusCode`; network errors are
 * Node's (with `code`); an idle socket rejects with a `TimeoutError`; an abort with an `AbortError`.
 * The payload is UNSIGNED-PAYLOAD: Content-MD5 protects it and the server verifies that.
 */
import { createHash, createHmac, createSecretKey, type KeyObject } from 'node:crypto';
import { request as httpRequest, type Agent, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Readable } from 'node:stream';
import type { PutEndpoint } from './s3-target.js';

/** What the SDK's credential providers resolve to. */
export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface S3PutTarget {
  /** Where PUTs go and the region they are signed for: the SDK's own resolution (s3-target.ts). */
  endpoint: () => Promise<PutEndpoint>;
  /** The SDK client's credential provider (cached and refreshed by the SDK). */
  credentials: () => Promise<S3Credentials>;
  /** The keep-alive pool for the endpoint's scheme. */
  agentFor: (protocol: 'http:' | 'https:') => Agent;
  connectTimeoutMs: number;
  /** A socket with no traffic for this long fails the request. */
  socketTimeoutMs: number;
}

export interface S3PutRequest {
  /** Full object key (prefix included). */
  key: string;
  /** `partNumber` and `uploadId` for UploadPart. */
  query?: Record<string, string>;
  /** A buffer, a stream, or a function that writes the body chunk by chunk (`write` resolves once the
   * socket has taken the chunk, so its buffer may be refilled) and resolves when all is written. */
  body: Buffer | Readable | ((write: (chunk: Buffer) => Promise<void>) => Promise<void>);
  contentLength: number;
  /** Base64 MD5 of the body. */
  contentMd5: string;
  /** Further headers to send and sign (lower case): content-type, x-amz-meta-*. */
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** The fields of the SDK's PutObject/UploadPart output the store reads. */
export interface S3PutAnswer {
  ETag?: string;
  ServerSideEncryption?: string;
  /** Set by SSE-C buckets: their ETags are not MD5s either. */
  SSECustomerAlgorithm?: string;
  /** Set by versioned buckets: the one version this PUT created. */
  VersionId?: string;
}

/** An S3 error answer, shaped like the SDK's service exceptions (what `classify` reads). */
export class S3ResponseError extends Error {
  readonly Code: string;
  readonly $metadata: { httpStatusCode: number };
  constructor(code: string, status: number, message: string) {
    super(message);
    this.name = code;
    this.Code = code;
    this.$metadata = { httpStatusCode: status };
  }
}

const UNSIGNED = 'UNSIGNED-PAYLOAD';

/** RFC 3986 encoding as SigV4 wants it (encodeURIComponent leaves `!'()*` alone). */
function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

export class S3Putter {
  /**
   * Derived signing key of the current day, region and secret (four HMACs saved per request), as
   * a KeyObject: an HMAC keyed with a Buffer imports the key again on every call (about 20 µs
   * here, against 3 µs), once per PUT.
   */
  private signingKey: { day: string; region: string; secret: string; key: KeyObject } | undefined;

  constructor(private readonly target: S3PutTarget) {}

  async put(req: S3PutRequest): Promise<S3PutAnswer> {
    const endpoint = await this.target.endpoint();
    const creds = await this.target.credentials();
    const path = `${endpoint.basePath}/${req.key.split('/').map(uriEncode).join('/')}`;
    const query = Object.entries(req.query ?? {})
      .map(([k, v]) => `${uriEncode(k)}=${uriEncode(v)}`)
      .sort()
      .join('&');
    const amzDate = new Date().toISOString().replace(/[-:]|\.\d{3}/g, '');
    const headers: Record<string, string> = {
      ...req.headers,
      host: endpoint.port ? `${endpoint.hostname}:${endpoint.port}` : endpoint.hostname,
      'content-md5': req.contentMd5,
      'x-amz-content-sha256': UNSIGNED,
      'x-amz-date': amzDate,
      ...(creds.sessionToken ? { 'x-amz-security-token': creds.sessionToken } : {}),
    };
    const names = Object.keys(headers).sort();
    const signedHeaders = names.join(';');
    const canonical = `PUT\n${path}\n${query}\n${names.map((h) => `${h}:${(headers[h] as string).trim()}\n`).join('')}\n${signedHeaders}\n${UNSIGNED}`;
    const day = amzDate.slice(0, 8);
    const scope = `${day}/${endpoint.signingRegion}/s3/aws4_request`;
    const toSign = `AWS4-HMAC-SHA256\n${amzDate}\n${scope}\n${createHash('sha256').update(canonical).digest('hex')}`;
    const signature = createHmac('sha256', this.keyFor(day, endpoint.signingRegion, creds.secretAccessKey)).update(toSign).digest('hex');
    headers.authorization = `AWS4-HMAC-SHA256 Credential=${creds.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`;
    headers['content-length'] = String(req.contentLength);
    return this.send(endpoint, `${path}${query ? `?${query}` : ''}`, headers, req.body, req.signal);
  }

  private keyFor(day: string, region: string, secret: string): KeyObject {
    const k = this.signingKey;
    if (k && k.day === day && k.region === region && k.secret === secret) return k.key;
    const hmac = (key: Buffer | string, data: string): Buffer => createHmac('sha256', key).update(data).digest();
    const key = hmac(hmac(hmac(hmac(`AWS4${secret}`, day), region), 's3'), 'aws4_request');
    const signing = createSecretKey(key);
    this.signingKey = { day, region, secret, key: signing };
    return signing;
  }

  private send(endpoint: PutEndpoint, path: string, headers: Record<string, string>, body: S3PutRequest['body'], signal: AbortSignal | undefined): Promise<S3PutAnswer> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(abortError(signal));
        return;
      }
      const request = endpoint.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = request({ protocol: endpoint.protocol, hostname: endpoint.hostname, port: endpoint.port || undefined, path, method: 'PUT', headers, agent: this.target.agentFor(endpoint.protocol) });
      let connectTimer: NodeJS.Timeout | undefined;
      const onAbort = (): void => void req.destroy(abortError(signal));
      signal?.addEventListener('abort', onAbort, { once: true });
      const cleanup = (): void => {
        clearTimeout(connectTimer);
        signal?.removeEventListener('abort', onAbort);
      };
      req.on('socket', (socket) => {
        if (!socket.connecting) return;
        connectTimer = setTimeout(() => req.destroy(timeoutError(`connect timed out after ${this.target.connectTimeoutMs} ms`)), this.target.connectTimeoutMs);
        socket.once('connect', () => clearTimeout(connectTimer));
      });
      req.setTimeout(this.target.socketTimeoutMs, () => req.destroy(timeoutError(`socket idle for ${this.target.socketTimeoutMs} ms`)));
      req.on('error', (err) => {
        cleanup();
        reject(err);
      });
      req.on('response', (res: IncomingMessage) => {
        const status = res.statusCode ?? 0;
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          // An error document is small; a success has no body worth keeping.
          if (status >= 300 && size < 64 * 1024) chunks.push(c);
          size += c.length;
        });
        res.on('error', (err) => {
          cleanup();
          reject(err);
        });
        res.on('end', () => {
          cleanup();
          if (status >= 200 && status < 300) {
            const header = (name: string): string | undefined => {
              const v = res.headers[name];
              return typeof v === 'string' ? v : undefined;
            };
            const sse = header('x-amz-server-side-encryption');
            const sseC = header('x-amz-server-side-encryption-customer-algorithm');
            const version = header('x-amz-version-id');
            resolve({
              ...(res.headers.etag ? { ETag: res.headers.etag } : {}),
              ...(sse !== undefined ? { ServerSideEncryption: sse } : {}),
              ...(sseC !== undefined ? { SSECustomerAlgorithm: sseC } : {}),
              ...(version !== undefined ? { VersionId: version } : {}),
            });
            return;
          }
          const xml = Buffer.concat(chunks).toString('utf8');
          const code = /<Code>([^<]*)<\/Code>/.exec(xml)?.[1] ?? `HTTP${status}`;
          const message = /<Message>([^<]*)<\/Message>/.exec(xml)?.[1] ?? `HTTP ${status}`;
          reject(new S3ResponseError(code, status, message));
        });
      });
      if (Buffer.isBuffer(body)) {
        req.end(body);
      } else if (typeof body === 'function') {
        const write = (chunk: Buffer): Promise<void> => new Promise((ok, fail) => void req.write(chunk, (err) => (err ? fail(err) : ok())));
        // A failure of the body (a local read) fails the request with that error; once the request
        // has failed for its own reason, the body's rejection changes nothing.
        body(write).then(
          () => req.end(),
          (err: unknown) => req.destroy(err instanceof Error ? err : new Error(String(err))),
        );
      } else {
        // The caller watches the source for its own errors; here a failed source only fails the request.
        body.on('error', (err) => req.destroy(err));
        body.pipe(req);
      }
    });
  }
}

function abortError(signal: AbortSignal | undefined): Error {
  const err = new Error(`request aborted${signal?.reason instanceof Error ? `: ${signal.reason.message}` : ''}`);
  err.name = 'AbortError';
  return err;
}

function timeoutError(message: string): Error {
  const err = new Error(message) as NodeJS.ErrnoException;
  err.name = 'TimeoutError';
  err.code = 'ETIMEDOUT';
  return err;
}
