/**
 * A small HTTP proxy between a client and an S3 server that injects faults on chosen requests:
 * connection resets (before the request reaches the server, or after the server handled it and
 * before the client hears back), stalls (no answer at all), 500 and 503 SlowDown answers, and a
 * flipped byte in the request body. A `plan` function decides per request (and sees every
 * request, so a caller can count them). `delayMs` holds back every forwarded answer by that
 * long, as a remote store's first byte would (bench:spark-read uses it as its latency proxy).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Transform } from 'node:stream';
import { HttpProxy } from './http-proxy.js';

export type Fault = 'reset' | 'reset-after-upstream' | 'stall' | 'error-500' | 'slowdown-503' | 'corrupt-body';

export interface ProxiedRequest {
  /** 1-based sequence number of the request through the proxy. */
  n: number;
  method: string;
  url: string;
  /** True for requests that carry an object body (PutObject, UploadPart). */
  hasBody: boolean;
  /** The request's Range header (`bytes=first-last`), if any. */
  range?: string;
}

export type FaultPlan = (req: ProxiedRequest) => Fault | undefined;

export class FaultProxy extends HttpProxy {
  readonly injected: Record<Fault, number> = { reset: 0, 'reset-after-upstream': 0, stall: 0, 'error-500': 0, 'slowdown-503': 0, 'corrupt-body': 0 };
  forwarded = 0;
  plan: FaultPlan;
  /** Milliseconds each forwarded answer waits before its status line reaches the client. */
  delayMs = 0;
  private n = 0;

  private constructor(upstream: URL, plan: FaultPlan) {
    super(upstream);
    this.plan = plan;
  }

  static async start(upstream: string, plan: FaultPlan = () => undefined): Promise<FaultProxy> {
    const proxy = new FaultProxy(new URL(upstream), plan);
    await proxy.listen();
    return proxy;
  }

  get totalInjected(): number {
    return Object.values(this.injected).reduce((a, b) => a + b, 0);
  }

  protected override handle(req: IncomingMessage, res: ServerResponse): void {
    const info: ProxiedRequest = {
      n: ++this.n,
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      hasBody: req.method === 'PUT' && Number(req.headers['content-length'] ?? 0) > 0 && !('x-amz-copy-source' in req.headers),
      ...(req.headers.range !== undefined ? { range: req.headers.range } : {}),
    };
    const fault = this.plan(info);
    if (fault) this.injected[fault]++;
    switch (fault) {
      case 'reset':
        req.socket.destroy();
        return;
      case 'stall':
        // Read the body (so the client finishes sending) and never answer.
        req.resume();
        return;
      case 'error-500':
        return this.answer(req, res, 500, 'InternalError', 'We encountered an internal error. Please try again.');
      case 'slowdown-503':
        return this.answer(req, res, 503, 'SlowDown', 'Please reduce your request rate.');
      default:
        this.forward(req, res, fault);
    }
  }

  private answer(req: IncomingMessage, res: ServerResponse, status: number, code: string, message: string): void {
    req.resume();
    req.on('end', () => {
      const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>fault</RequestId></Error>`;
      res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  }

  private forward(req: IncomingMessage, res: ServerResponse, fault: Fault | undefined): void {
    const upstreamReq = this.upstreamRequest(req, (upstreamRes) => {
      if (fault === 'reset-after-upstream') {
        // The server did the work; the client never learns it.
        upstreamRes.resume();
        upstreamRes.on('end', () => req.socket.destroy());
        return;
      }
      this.forwarded++;
      const send = (): void => {
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
        upstreamRes.pipe(res);
      };
      if (this.delayMs > 0) setTimeout(send, this.delayMs);
      else send();
    });
    upstreamReq.on('error', () => req.socket.destroy());
    req.on('error', () => upstreamReq.destroy());
    if (fault === 'corrupt-body') {
      let flipped = false;
      const flip = new Transform({
        transform(chunk: Buffer, _enc, cb): void {
          if (!flipped && chunk.length > 0) {
            const copy = Buffer.from(chunk);
            const i = Math.floor(copy.length / 2);
            copy[i] = (copy[i] as number) ^ 0x01;
            flipped = true;
            cb(null, copy);
          } else cb(null, chunk);
        },
      });
      req.pipe(flip).pipe(upstreamReq);
    } else {
      req.pipe(upstreamReq);
    }
  }
}
