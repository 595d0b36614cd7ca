/**
 * A gRPC server on Node's own HTTP/2, for services whose every RPC takes one request message
 * (unary and server-streaming), which is all this agent's contract has.
 *
 * Why not grpc-js's Server: on this agent's hot path, one 64 KiB partition per call, grpc-js
 * spends about 0.2 ms of CPU per call before any of our code runs (its interceptor chain, metadata
 * objects and per-call streams): 5,450 calls/s at most on a core, against 12,400 for the same
 * responses written straight to `node:http2` (scratch benchmark with h2load, bench/RESULTS.md).
 * The protocol a server of single-request RPCs must speak is small and is implemented here:
 * framing, `grpc-timeout`, trailers-only errors, status trailers, cancellation, keepalive pings,
 * TLS and mTLS, graceful GOAWAY. Clients stay grpc-js, grpc-java, grpcio: any gRPC client.
 */
import http2, { type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { status } from '@grpc/grpc-js';
import type { Grant, TlsFiles } from './auth.js';
import { boundedStatusMessage, clip, ServeError } from './errors.js';
import { encodeGrpcMessage, parseGrpcTimeout, RequestBody } from './grpc-wire.js';

/** Called once the request message has arrived whole. Must end the call (`end` or `fail`) eventually. */
export type CallHandler = (call: GrpcCall, message: Buffer) => void;

export interface H2ServerOptions {
  tls?: TlsFiles;
  /** Largest request message accepted; more is RESOURCE_EXHAUSTED. */
  maxRequestBytes: number;
  /** HTTP/2 streams one connection may have open at once (the HTTP/2 setting). */
  maxConcurrentStreams: number;
  /** Ping each connection this often to find peers that vanished without closing; 0: never. */
  keepaliveMs: number;
  /** A connection whose ping is not answered within this is closed. */
  keepaliveTimeoutMs: number;
  /** Connections open at once; a connection beyond it is closed as it arrives. */
  maxConnections: number;
  /** A connection without an open stream for this long is closed (GOAWAY); 0: never. */
  idleTimeoutMs: number;
  /** A stream whose pending messages make no progress for this long is reset (a client that stopped reading). */
  stallTimeoutMs: number;
  /**
   * Memory one connection may use in HTTP/2's own accounting (header compression, queued frames,
   * unread request data), in MB: beyond it new streams are refused (ENHANCE_YOUR_CALM).
   */
  maxSessionMemoryMb: number;
  /** A request whose message has not arrived whole this long after its headers is cancelled and its bytes freed. */
  requestBodyTimeoutMs: number;
  /**
   * Checks a call's credentials from its headers, before any of its body is read; throws a
   * ServeError (UNAUTHENTICATED) to refuse it. Without it every call is `open`.
   */
  authenticate?: (headers: IncomingHttpHeaders) => Grant;
  /** Told of each call refused at its headers by `authenticate` (for metrics). */
  onUnauthenticated?: (code: status) => void;
}

/** Why a call ended before the handler finished it. */
export type CallAbortReason = 'CANCELLED' | 'DEADLINE_EXCEEDED';

const RESPONSE_HEADERS = { ':status': 200, 'content-type': 'application/grpc+proto', 'grpc-accept-encoding': 'identity' };

/**
 * One RPC. Messages go out with `write` (already framed), the call ends with `end` (OK) or
 * `fail` (a status). `signal` aborts when the client cancels, the deadline passes or the server is
 * forced closed; writes after that are dropped.
 */
export class GrpcCall {
  readonly signal: AbortSignal;
  /** Resolves when the HTTP/2 stream is closed, by either side, for whatever reason. */
  readonly streamClosed: Promise<void>;
  private markClosed!: () => void;
  /** Set when `signal` aborted. */
  abortReason: CallAbortReason | undefined;
  /** What the caller's credentials allow, decided at the headers. */
  grant: Grant = { kind: 'open' };
  private readonly controller = new AbortController();
  private headersSent = false;
  private finished = false;
  /** Writes handed to the stream and not yet taken by the socket. */
  private unsent = 0;
  private stallArmed = false;
  private readonly onStall = (): void => {
    if (this.stream.closed || this.stream.destroyed) return;
    this.abort('CANCELLED');
    this.stream.close(http2.constants.NGHTTP2_CANCEL);
  };
  private trailers: Record<string, string> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly stream: ServerHttp2Stream,
    readonly path: string,
    readonly headers: IncomingHttpHeaders,
    /** Absolute deadline in ms since the epoch; Infinity without one. */
    readonly deadline: number,
    /** Reset the stream when its pending writes make no progress for this long; 0: never. */
    private readonly stallMs = 0,
  ) {
    this.signal = this.controller.signal;
    this.streamClosed = new Promise((resolve) => (this.markClosed = resolve));
    if (Number.isFinite(deadline)) {
      this.timer = setTimeout(() => this.expire(), Math.max(0, deadline - Date.now()));
    }
  }

  /** True once the call has a final status or was aborted. */
  get done(): boolean {
    return this.finished || this.signal.aborted;
  }

  /**
   * Send one framed message. `onSent` runs once HTTP/2 flow control let it out and the socket took
   * the bytes (the buffer is free again then); with `ok` false when the call ended first.
   */
  write(frame: Buffer, onSent?: (ok: boolean) => void): void {
    if (this.done) {
      onSent?.(false);
      return;
    }
    this.sendHeaders();
    // A client that stops reading leaves writes pending for ever (HTTP/2 flow control): after
    // `stallMs` without progress the stream is reset, so its buffers are freed even when the call
    // has no deadline. Idle streams with nothing to send (WatchStatus) are not affected.
    if (this.unsent++ === 0 && this.stallMs > 0) {
      // The listener once per call: setTimeout(ms, callback) would add one at every arming.
      if (!this.stallArmed) this.stream.on('timeout', this.onStall);
      this.stallArmed = true;
      this.stream.setTimeout(this.stallMs);
    }
    // write()'s return value (the Writable's 16 KiB mark) is ignored on purpose: callers bound
    // what they have in flight by counting callbacks (see StreamWriter).
    this.stream.write(frame, (err?: Error | null) => {
      if (--this.unsent === 0 && this.stallMs > 0) this.stream.setTimeout(0);
      onSent?.(!err);
    });
  }

  /** End with OK. */
  end(): void {
    this.finish(status.OK, '');
  }

  /** End with a status other than OK. */
  fail(code: status, message: string): void {
    this.finish(code, message);
  }

  /** The client went away (RST_STREAM, connection lost) or the server cuts the call. */
  abort(reason: CallAbortReason): void {
    if (this.signal.aborted) return;
    this.abortReason = reason;
    this.controller.abort();
  }

  /** The stream closed: an abort unless the call had ended. */
  closed(): void {
    clearTimeout(this.timer);
    this.markClosed();
    if (this.finished) return;
    // A client's own deadline timer fires about when ours would and resets the stream: a cancel
    // that close to the deadline is the deadline passing.
    this.abort(Date.now() >= this.deadline - 250 ? 'DEADLINE_EXCEEDED' : 'CANCELLED');
  }

  /**
   * The deadline passed: answer DEADLINE_EXCEEDED and stop the handler. When messages already went
   * out, the status would queue behind data a stalled client may never read: reset the stream
   * instead (the client's own deadline has passed too, so it reports DEADLINE_EXCEEDED), which
   * frees what the stream still buffers at once.
   */
  expire(): void {
    if (this.stream.closed || this.stream.destroyed) return;
    const streaming = this.headersSent;
    if (!this.done) {
      this.finish(status.DEADLINE_EXCEEDED, 'deadline exceeded');
      this.abort('DEADLINE_EXCEEDED');
    }
    // Also after an OK end whose last messages and trailers still wait for the client to read.
    if (streaming && !this.stream.closed) this.stream.close(http2.constants.NGHTTP2_CANCEL);
  }

  private finish(code: status, message: string): void {
    if (this.done) return;
    this.finished = true;
    const s = this.stream;
    if (s.destroyed || s.closed) return;
    const trailers: Record<string, string> = { 'grpc-status': String(code) };
    if (message !== '') trailers['grpc-message'] = encodeGrpcMessage(boundedStatusMessage(message));
    try {
      if (!this.headersSent) {
        // Trailers-only: one HEADERS frame with the status and END_STREAM.
        this.headersSent = true;
        s.respond({ ...RESPONSE_HEADERS, ...trailers }, { endStream: true });
      } else {
        this.trailers = trailers;
        s.end();
      }
    } catch {
      // The stream went away between the check and the call: the client is gone, nothing to tell.
    }
  }

  private sendHeaders(): void {
    if (this.headersSent) return;
    this.headersSent = true;
    this.stream.respond(RESPONSE_HEADERS, { waitForTrailers: true });
    this.stream.once('wantTrailers', () => {
      try {
        this.stream.sendTrailers(this.trailers ?? { 'grpc-status': String(status.OK) });
      } catch {
        // Reset meanwhile.
      }
    });
  }
}

/** The server: routes `/<package>.<Service>/<Method>` paths to handlers. */
export class H2GrpcServer {
  private readonly server: http2.Http2Server | http2.Http2SecureServer;
  private readonly sessions = new Set<Http2Session>();
  private readonly calls = new Set<GrpcCall>();

  constructor(
    private readonly routes: ReadonlyMap<string, CallHandler>,
    private readonly options: H2ServerOptions,
  ) {
    const common: http2.ServerOptions = {
      settings: { maxConcurrentStreams: options.maxConcurrentStreams },
      // Sized by the caller above what its own byte budget lets one connection queue (so a busy
      // peer is not refused), and bounded: an unlimited session let unauthenticated peers grow
      // the agent by hundreds of MB with streams that never finish their requests.
      maxSessionMemory: options.maxSessionMemoryMb,
    };
    const tls = options.tls;
    this.server = tls
      ? http2.createSecureServer({
          ...common,
          cert: tls.cert,
          key: tls.key,
          ...(tls.clientCa ? { ca: tls.clientCa, requestCert: true, rejectUnauthorized: true } : {}),
          minVersion: 'TLSv1.2',
          ALPNProtocols: ['h2'],
        })
      : http2.createServer(common);
    // Each connection costs about 15 KB even idle: bound how many peers may hold one.
    this.server.maxConnections = options.maxConnections;
    // Small answers (one partition, a status) go out at once instead of waiting for Nagle's
    // algorithm to hear the ACK of the last segment (Node's HTTP/2 server leaves it on).
    this.server.on('connection', (socket: Socket) => socket.setNoDelay(true));
    this.server.on('session', (session) => this.track(session));
    this.server.on('stream', (stream, headers) => this.onStream(stream, headers));
    // A TLS client without ALPN h2 (HTTP/1.1, a port scanner): nothing to say to it.
    this.server.on('unknownProtocol', (socket: Socket) => socket.destroy());
    this.server.on('sessionError', () => undefined);
  }

  /** Resolves to the port bound. */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve((this.server.address() as { port: number }).port);
      });
    });
  }

  /** RPCs running now. */
  get activeCalls(): number {
    return this.calls.size;
  }

  /**
   * Stop accepting connections, send GOAWAY (running calls go on), then after `graceMs` cut what
   * is left. Resolves once every connection is closed.
   */
  async close(graceMs: number): Promise<boolean> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const s of this.sessions) s.close();
    let timer: NodeJS.Timeout | undefined;
    const forced = await Promise.race([
      closed.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), graceMs);
      }),
    ]);
    clearTimeout(timer);
    if (forced) {
      for (const c of this.calls) c.abort('CANCELLED');
      for (const s of this.sessions) s.destroy();
      await closed;
    }
    return forced;
  }

  private track(session: Http2Session): void {
    this.sessions.add(session);
    session.on('error', () => undefined);
    let interval: NodeJS.Timeout | undefined;
    if (this.options.keepaliveMs > 0) {
      interval = setInterval(() => this.ping(session), this.options.keepaliveMs);
      interval.unref();
    }
    // Idle: no stream open. Our own pings keep the socket busy, so activity is counted in streams.
    let open = 0;
    let idle: NodeJS.Timeout | undefined;
    const arm = (): void => {
      if (this.options.idleTimeoutMs <= 0) return;
      idle = setTimeout(() => session.close(), this.options.idleTimeoutMs);
      idle.unref();
    };
    session.on('stream', (stream: ServerHttp2Stream) => {
      open++;
      clearTimeout(idle);
      stream.once('close', () => {
        if (--open === 0 && !session.closed) arm();
      });
    });
    arm();
    session.once('close', () => {
      clearInterval(interval);
      clearTimeout(idle);
      this.sessions.delete(session);
    });
  }

  private ping(session: Http2Session): void {
    if (session.destroyed || session.closed) return;
    const timeout = setTimeout(() => session.destroy(), this.options.keepaliveTimeoutMs);
    timeout.unref();
    try {
      const sent = session.ping(() => clearTimeout(timeout));
      if (!sent) clearTimeout(timeout);
    } catch {
      clearTimeout(timeout);
    }
  }

  private onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    // Errors of a stream (a reset while writing) end its call through 'close'; never crash.
    stream.on('error', () => undefined);
    const path = headers[':path'] ?? '';
    const contentType = headers['content-type'] ?? '';
    if (headers[':method'] !== 'POST' || !contentType.startsWith('application/grpc')) {
      respondHttp(stream, headers[':method'] !== 'POST' ? 405 : 415);
      return;
    }
    let deadline = Infinity;
    let handler: CallHandler | undefined;
    let refusal: ServeError | undefined;
    try {
      const timeout = parseGrpcTimeout(headers['grpc-timeout']);
      if (timeout !== undefined) deadline = Date.now() + timeout;
      handler = this.routes.get(path);
      if (!handler) refusal = new ServeError(status.UNIMPLEMENTED, `unknown method ${clip(path, 128)}`);
    } catch (err) {
      refusal = err instanceof ServeError ? err : new ServeError(status.INTERNAL, String(err));
    }
    const call = new GrpcCall(stream, path, headers, deadline, this.options.stallTimeoutMs);
    // Credentials at the headers: a caller that proves nothing never gets a byte of body buffered.
    if (!refusal && this.options.authenticate) {
      try {
        call.grant = this.options.authenticate(headers);
      } catch (err) {
        refusal = err instanceof ServeError ? err : new ServeError(status.UNAUTHENTICATED, 'cannot check credentials');
        this.options.onUnauthenticated?.(refusal.code);
      }
    }
    if (refusal || !handler) {
      call.fail(refusal?.code ?? status.UNIMPLEMENTED, refusal?.message ?? 'unknown method');
      stream.close(http2.constants.NGHTTP2_NO_ERROR);
      return;
    }
    this.calls.add(call);
    stream.once('close', () => {
      this.calls.delete(call);
      call.closed();
    });
    const body = new RequestBody(this.options.maxRequestBytes);
    const run = handler;
    // A request is a few ids: one that does not arrive whole in time holds its buffers for
    // nothing. Cancel it and free them.
    const bodyTimer = setTimeout(() => {
      stream.off('data', onData);
      stream.off('end', onEnd);
      call.fail(status.CANCELLED, `request message not received within ${this.options.requestBodyTimeoutMs} ms`);
      call.abort('CANCELLED');
      if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL);
    }, this.options.requestBodyTimeoutMs);
    bodyTimer.unref();
    stream.once('close', () => clearTimeout(bodyTimer));
    const onData = (piece: Buffer): void => {
      try {
        body.push(piece);
      } catch (err) {
        clearTimeout(bodyTimer);
        stream.off('data', onData);
        stream.off('end', onEnd);
        const e = err as ServeError;
        call.fail(e.code, e.message);
        // Stop the client sending the rest (RST_STREAM NO_ERROR after a complete response).
        stream.close(http2.constants.NGHTTP2_NO_ERROR);
      }
    };
    const onEnd = (): void => {
      clearTimeout(bodyTimer);
      let message: Buffer;
      try {
        message = body.message();
      } catch (err) {
        const e = err as ServeError;
        call.fail(e.code, e.message);
        return;
      }
      if (Date.now() >= call.deadline) call.expire();
      if (!call.done) run(call, message);
    };
    stream.on('data', onData);
    stream.once('end', onEnd);
  }
}

function respondHttp(stream: ServerHttp2Stream, code: number): void {
  try {
    stream.respond({ ':status': code }, { endStream: true });
  } catch {
    // Already gone.
  }
  stream.close(http2.constants.NGHTTP2_NO_ERROR);
}
