/**
 * The agent's HTTP endpoints: health, readiness, Prometheus metrics, JSON status. Other concerns
 * add routes (the lifecycle adds drain and safe-exit waiting) through `route()`.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';

export interface HttpRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  raw: IncomingMessage;
  /** Aborts when the client goes away, so long-polls can stop. */
  signal: AbortSignal;
  /**
   * The peer connected over loopback: in Kubernetes, a container of the agent's own pod (each pod
   * has its own network namespace). Control routes answer only such peers.
   */
  local: boolean;
}

export interface HttpResponse {
  status: number;
  body: unknown;
  contentType?: string;
}

export type HttpHandler = (req: HttpRequest) => Promise<HttpResponse> | HttpResponse;

export class HttpServer {
  private readonly routes = new Map<string, HttpHandler>();
  private server?: Server;
  private closing: Promise<void> | undefined;

  constructor(private readonly logger?: Logger) {}

  route(method: string, path: string, handler: HttpHandler): this {
    this.routes.set(`${method.toUpperCase()} ${path}`, handler);
    return this;
  }

  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    const server = createServer((req, res) => void this.handle(req, res));
    server.keepAliveTimeout = 5_000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address() as AddressInfo;
    return { host: addr.address, port: addr.port };
  }

  /** Stop listening and cut open connections. Memoised: every caller waits for the one close. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      const server = this.server;
      if (!server) return resolve();
      server.close(() => resolve());
      server.closeAllConnections();
    });
    return this.closing;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // Nothing of a request may escape this function: it runs as a detached promise (one per
    // request), and a rejection there used to stop the whole agent for every tenant.
    let response: HttpResponse;
    let method = 'GET';
    try {
      method = req.method ?? 'GET';
      response = await this.respond(req, res, method);
    } catch (err) {
      this.logger?.error({ err }, 'http request failed');
      response = { status: 500, body: { error: 'internal error' } };
    }
    try {
      if (res.destroyed || res.headersSent) return;
      const text = typeof response.body === 'string' ? response.body : JSON.stringify(response.body, null, 2) + '\n';
      res.writeHead(response.status, {
        'content-type': response.contentType ?? (typeof response.body === 'string' ? 'text/plain; charset=utf-8' : 'application/json'),
        'cache-control': 'no-store',
      });
      res.end(method === 'HEAD' ? undefined : text);
    } catch (err) {
      this.logger?.warn({ err }, 'http response could not be written');
      res.destroy();
    }
  }

  private async respond(req: IncomingMessage, res: ServerResponse, method: string): Promise<HttpResponse> {
    const url = requestUrl(req.url);
    if (url === undefined) return { status: 400, body: { error: 'malformed request target' } };
    const handler = this.routes.get(`${method === 'HEAD' ? 'GET' : method} ${url.pathname}`);
    if (!handler) {
      const allowed = [...this.routes.keys()].filter((k) => k.endsWith(` ${url.pathname}`));
      return allowed.length > 0 ? { status: 405, body: { error: `method ${method.slice(0, 16)} not allowed` } } : { status: 404, body: { error: 'no such route' } };
    }
    const controller = new AbortController();
    res.on('close', () => controller.abort());
    try {
      return await handler({ method, path: url.pathname, query: url.searchParams, raw: req, signal: controller.signal, local: isLoopback(req.socket.remoteAddress) });
    } catch (err) {
      this.logger?.error({ err, path: url.pathname }, 'http handler failed');
      return { status: 500, body: { error: 'internal error' } };
    }
  }
}

/**
 * The path and query of a request target, or undefined when it is not one this server answers.
 * Only origin-form (`/path?query`, RFC 9112 3.2.1) is accepted: the target is appended to a fixed
 * origin, so `//host`, `//[` and the like are paths, never an authority that could fail to parse.
 * Absolute-form (`http://host/path`, meant for proxies), `*` and anything else are refused.
 */
export function requestUrl(target: string | undefined): URL | undefined {
  if (target === undefined || !target.startsWith('/')) return undefined;
  try {
    const url = new URL(`http://agent${target}`);
    return url.host === 'agent' ? url : undefined;
  } catch {
    return undefined;
  }
}

/** 127.0.0.0/8, ::1 and their IPv4-mapped forms. */
export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return v4.startsWith('127.') || address === '::1';
}
