/**
 * An HTTP proxy in front of s3rver that answers the way AWS S3 answers for a bucket whose default
 * encryption is SSE-KMS (or for SSE-C requests), per AWS's documentation: every PutObject,
 * UploadPart, CompleteMultipartUpload, HeadObject and GetObject answer carries
 * `x-amz-server-side-encryption: aws:kms` and `x-amz-server-side-encryption-aws-kms-key-id`
 * (SSE-C: `x-amz-server-side-encryption-customer-algorithm: AES256` and
 * `x-amz-server-side-encryption-customer-key-MD5`), and ETags are 32 hex digits that are NOT the
 * MD5 of the data (multipart: `<32 hex>-<parts>`). Mode `mismatch` rewrites ETags the same way
 * without any encryption header: a server that stored other bytes than were sent.
 * Every request is recorded, so a test can see whether a DeleteObject was sent.
 */
import { randomBytes } from 'node:crypto';
import { createServer, request as httpRequest, Agent, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type SseMode = 'sse-kms' | 'sse-c' | 'mismatch';

const KMS_KEY = 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';

export class SseProxy {
  readonly requests: Array<{ method: string; url: string }> = [];
  mode: SseMode;
  private readonly sockets = new Set<Socket>();
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 32 });

  private constructor(
    private readonly server: Server,
    private readonly upstream: URL,
    mode: SseMode,
  ) {
    this.mode = mode;
    server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    server.on('request', (req, res) => this.handle(req, res));
  }

  static async start(upstream: string, mode: SseMode): Promise<SseProxy> {
    const server = createServer();
    const proxy = new SseProxy(server, new URL(upstream), mode);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** DeleteObject requests seen (DELETE of a key; not AbortMultipartUpload, which carries uploadId). */
  get deletes(): number {
    return this.requests.filter((r) => r.method === 'DELETE' && !r.url.includes('uploadId=')).length;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.agent.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    this.requests.push({ method, url });
    const upstreamReq = httpRequest(
      { host: this.upstream.hostname, port: this.upstream.port, method, path: url, headers: req.headers, agent: this.agent },
      (up) => {
        const headers: Record<string, string | string[] | undefined> = { ...up.headers };
        const completing = method === 'POST' && url.includes('uploadId=');
        const ok = (up.statusCode ?? 500) < 300;
        if (ok && (method === 'PUT' || method === 'GET' || method === 'HEAD' || completing)) this.encryptionHeaders(headers);
        if (ok && method === 'PUT' && typeof headers.etag === 'string') headers.etag = `"${randomHex()}"`;
        if (completing && ok) {
          // The ETag is in the XML body: read it, rewrite it, fix the length.
          const parts: Buffer[] = [];
          up.on('data', (c: Buffer) => parts.push(c));
          up.on('end', () => {
            const body = Buffer.from(Buffer.concat(parts).toString('utf8').replace(/<ETag>(?:&quot;|")?[0-9a-f]{32}(-\d+)?(?:&quot;|")?<\/ETag>/, (_m, suffix: string | undefined) => `<ETag>&quot;${randomHex()}${suffix ?? ''}&quot;</ETag>`));
            headers['content-length'] = String(body.length);
            res.writeHead(up.statusCode ?? 500, headers);
            res.end(body);
          });
          return;
        }
        res.writeHead(up.statusCode ?? 500, headers);
        up.pipe(res);
      },
    );
    upstreamReq.on('error', () => res.destroy());
    req.pipe(upstreamReq);
  }

  private encryptionHeaders(headers: Record<string, string | string[] | undefined>): void {
    if (this.mode === 'sse-kms') {
      headers['x-amz-server-side-encryption'] = 'aws:kms';
      headers['x-amz-server-side-encryption-aws-kms-key-id'] = KMS_KEY;
    } else if (this.mode === 'sse-c') {
      headers['x-amz-server-side-encryption-customer-algorithm'] = 'AES256';
      headers['x-amz-server-side-encryption-customer-key-md5'] = randomBytes(16).toString('base64');
    }
  }
}

function randomHex(): string {
  return randomBytes(16).toString('hex');
}
