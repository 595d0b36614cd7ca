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
import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpProxy } from '../kit/http-proxy.js';

export type SseMode = 'sse-kms' | 'sse-c' | 'mismatch';

const KMS_KEY = 'arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';

export class SseProxy extends HttpProxy {
  readonly requests: Array<{ method: string; url: string }> = [];
  mode: SseMode;

  private constructor(upstream: URL, mode: SseMode) {
    super(upstream);
    this.mode = mode;
  }

  static async start(upstream: string, mode: SseMode): Promise<SseProxy> {
    const proxy = new SseProxy(new URL(upstream), mode);
    await proxy.listen();
    return proxy;
  }

  /** DeleteObject requests seen (DELETE of a key; not AbortMultipartUpload, which carries uploadId). */
  get deletes(): number {
    return this.requests.filter((r) => r.method === 'DELETE' && !r.url.includes('uploadId=')).length;
  }

  protected override handle(req: IncomingMessage, res: ServerResponse): void {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    this.requests.push({ method, url });
    const upstreamReq = this.upstreamRequest(req, (up) => {
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
    });
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
