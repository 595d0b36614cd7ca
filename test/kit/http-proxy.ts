/**
 * What the kit's HTTP proxies in front of an S3 server share: a server on a free loopback port,
 * the connections it holds (closed at once by close()), a keep-alive agent to the upstream, and
 * the upstream request for a client's request. A subclass decides what each request gets.
 */
import { createServer, request as httpRequest, Agent, type ClientRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export abstract class HttpProxy {
  private readonly server: Server = createServer();
  private readonly sockets = new Set<Socket>();
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 32 });

  protected constructor(private readonly upstream: URL) {
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    this.server.on('request', (req, res) => this.handle(req, res));
  }

  /** Answers one client request (usually by forwarding it with `upstreamRequest`). */
  protected abstract handle(req: IncomingMessage, res: ServerResponse): void;

  /** Starts listening on a free loopback port. */
  protected async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
  }

  /** The client's request, to the upstream: same method, path and headers; `onResponse` gets the answer. */
  protected upstreamRequest(req: IncomingMessage, onResponse: (res: IncomingMessage) => void): ClientRequest {
    return httpRequest(
      { host: this.upstream.hostname, port: this.upstream.port, method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers, agent: this.agent },
      onResponse,
    );
  }

  get endpoint(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.agent.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
