/**
 * The gRPC block service: serves shuffle blocks by id from the local file while it exists and
 * from the store after that, plus listing, status, a status stream and drain requests.
 */
import { status } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { BlockStore } from '../store/block-store.js';
import { NotFoundError } from '../store/block-store.js';
import type { FallbackLayout } from '../spark/fallback-key.js';
import { describeError } from '../util/errors.js';
import { GrpcAccess, TokenCheck, type Grant, type TlsFiles } from './auth.js';
import { ByteBudget } from '../util/byte-budget.js';
import { ChunkPool, encodeChunkFrame } from './chunk-codec.js';
import { frameMessage } from './grpc-wire.js';
import { H2GrpcServer, type CallHandler, type GrpcCall } from './h2-server.js';
import { resolveFileRange, resolvePartitions, validateIds, int64Field, type ResolveDeps, type ResolvedRange } from './block-source.js';
import { HandleCache } from './handle-cache.js';
import { invalid, notFound, permissionDenied, ServeError, statusName, unavailable } from './errors.js';
import { listMapOutputs } from './list-outputs.js';
import {
  loadProto,
  SERVICE_PATH,
  type AgentStateName,
  type AgentStatus,
  type Chunk,
  type DrainProgressMessage,
  type DrainRequest,
  type FetchBlockFileRangeRequest,
  type FetchShuffleBlockRequest,
  type ListMapOutputsRequest,
  type MapOutputInfo,
} from './proto.js';
import { StreamWriter } from './stream-writer.js';
import { NO_METRICS, type BlockSourceKind, type LifecycleView, type OutputLookup, type ServeMetrics, type StatusSnapshot } from './types.js';

export const DEFAULT_CHUNK_SIZE = 1024 * 1024;
/** Clients' default max receive size is 4 MiB; a chunk plus framing must stay below it. */
export const MAX_CHUNK_SIZE = 4 * 1024 * 1024 - 1024;
export const DEFAULT_MAX_STREAMS = 256;
export const DEFAULT_MAX_BUFFERED = 32 * 1024 * 1024;
/** Spark's own `spark.network.timeout` default: a peer silent that long is gone. */
export const DEFAULT_STALL_TIMEOUT_MS = 120_000;
/** Chunks shrink down to this when many streams share the byte budget. */
const MIN_CHUNK = 64 * 1024;
/** HTTP/2 streams one connection may have open at once, unless configured. */
export const DEFAULT_MAX_STREAMS_PER_CONNECTION = 128;
/** Connections at once: about 15 KB each when idle, so the default bounds them near 15 MB. */
export const DEFAULT_MAX_CONNECTIONS = 1024;
/** gRPC's own servers close idle connections too (MAX_CONNECTION_IDLE); clients reconnect at once. */
export const DEFAULT_IDLE_TIMEOUT_MS = 300_000;
/** A request message must arrive whole within this of its headers, unless configured. */
export const DEFAULT_REQUEST_BODY_TIMEOUT_MS = 10_000;
/**
 * Distinct shuffle ids one ListMapOutputs may name: each costs a store LIST, one after the
 * other. Spark jobs with more shuffles than this list the whole app (no ids) instead.
 */
export const MAX_LIST_SHUFFLE_IDS = 256;

export interface GrpcServerDeps {
  /** Outputs known locally (the write-back queue). */
  lookup: OutputLookup;
  /** Where persisted outputs are read from once their local files are gone. */
  store: BlockStore;
  /** Key layout of the store. */
  layout?: FallbackLayout;
  /** GetStatus / WatchStatus / Drain answer UNIMPLEMENTED without it. */
  lifecycle?: LifecycleView;
  metrics?: ServeMetrics;
  logger?: Pick<Logger, 'debug' | 'info' | 'warn'>;
  /**
   * Whether this agent serves `appId` at all (sidecar: the pod's own app; DaemonSet: apps seen on
   * the node). Others get NOT_FOUND, whatever the store holds. Every app when unset.
   */
  servesApp?: (appId: string) => boolean;
}

export interface GrpcServerOptions {
  host: string;
  /** 0 picks a free port. */
  port: number;
  tls?: TlsFiles;
  /** Node-wide secret clients send as `authorization: Bearer <token>`: every app, and Drain. */
  token?: string;
  /**
   * Cluster keys of per-app tokens (`appToken(key, appId, expiresAt)`; any of them verifies): a caller with one gets that app's
   * outputs, status, and nothing else (no Drain, no other app).
   */
  appKeys?: readonly Buffer[];
  /** HTTP/2 streams one connection may have open (128 by default). */
  maxStreamsPerConnection?: number;
  /** Connections open at once (1024 by default); more are closed as they arrive. */
  maxConnections?: number;
  /** A connection with no open stream for this long is closed (300 s by default; 0: never). */
  idleTimeoutMs?: number;
  /** A request message not received whole within this of its headers is cancelled (10 s by default). */
  requestBodyTimeoutMs?: number;
  /** Concurrent fetch and list streams; more are refused with RESOURCE_EXHAUSTED. */
  maxStreams?: number;
  /** Largest chunk sent, in bytes (1 MiB by default). */
  chunkSize?: number;
  /** Chunks per stream handed to the transport and not yet sent (flow control holds them). */
  windowChunks?: number;
  /**
   * Bytes read and not yet sent, over all streams (32 MiB by default); chunks shrink (to 64 KiB
   * at least) when many streams share it. Each stream may still hold
   * one chunk beyond it, so a stalled client never blocks the others.
   */
  maxBufferedBytes?: number;
  /**
   * A stream whose client stopped reading is reset after this long without progress (120 s by
   * default), with or without a deadline: what it still buffers is freed.
   */
  stallTimeoutMs?: number;
}

export interface RunningGrpcServer {
  /** The port bound (useful with port 0). */
  readonly port: number;
  /** Fetch and list streams running now. */
  activeStreams(): number;
  /** Bytes read for clients and not yet taken by their sockets (the `--grpc-max-buffered` budget in use). */
  bufferedBytes(): number;
  /**
   * Require this token from now on (the previous one stays valid for 5 minutes). Only for a server
   * started with a token: turning authentication on at run time is not supported.
   */
  rotateToken(token: string): void;
  /** Use these per-app keys from now on (tokens under a key no longer listed stop working). Only for a server started with one. */
  rotateAppKeys(keys: readonly Buffer[]): void;
  /**
   * Stop accepting calls, end status streams, let running fetches finish for `graceMs`, then
   * cut what is left. Idempotent: every call returns the same promise.
   */
  close(graceMs?: number): Promise<void>;
}

/** `limited`: fetch and list streams (--grpc-max-streams); `control`: status and drain streams. */
type StreamKind = 'limited' | 'control' | 'unary';

interface StreamContext<Res> {
  /** Aborts when the client cancels, the deadline passes or the server is forced closed. */
  signal: AbortSignal;
  /** Aborts when the server begins to close (status and drain streams end then). */
  stopping: AbortSignal;
  writer: StreamWriter<Res>;
  /** What the caller's credentials allow. */
  grant: Grant;
}

/** Start the service. Resolves once the port is bound. */
export async function startGrpcServer(deps: GrpcServerDeps, options: GrpcServerOptions): Promise<RunningGrpcServer> {
  const service = new BlockService(deps, options);
  return service.start();
}

/** WatchStatus and Drain streams open at once (a preStop hook or an operator each hold one). */
const MAX_CONTROL_STREAMS = 64;
/** Of those, what per-app tokens may hold together: the rest stays for the node's own callers (preStop hooks). */
const MAX_APP_CONTROL_STREAMS = MAX_CONTROL_STREAMS / 2;

/** Decodes a request message (proto-loader's decoder); its errors are the client's. */
type Decoder<Req> = (message: Buffer) => Req;

class BlockService {
  private readonly server: H2GrpcServer;
  private readonly metrics: ServeMetrics;
  private readonly token: TokenCheck | undefined;
  private readonly access: GrpcAccess;
  private readonly hasAppKey: boolean;
  private readonly layout: FallbackLayout;
  private readonly chunkSize: number;
  private readonly maxStreams: number;
  private readonly windowChunks: number;
  private readonly budget: ByteBudget;
  private readonly pool: ChunkPool;
  private readonly handles = new HandleCache();
  private readonly takeBuffer = (length: number): Buffer => this.pool.take(length);
  private readonly stopping = new AbortController();
  private limited = 0;
  private control = 0;
  private appControl = 0;
  private readonly perAppStreams = new Map<string, number>();
  private readonly maxStreamsPerApp: number;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly deps: GrpcServerDeps,
    private readonly options: GrpcServerOptions,
  ) {
    this.metrics = deps.metrics ?? NO_METRICS;
    this.token = options.token !== undefined ? new TokenCheck(options.token) : undefined;
    this.access = new GrpcAccess(this.token, options.appKeys);
    this.hasAppKey = options.appKeys !== undefined && options.appKeys.length > 0;
    this.layout = deps.layout ?? 'spark-3.3';
    this.chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
    if (!Number.isInteger(this.chunkSize) || this.chunkSize < 1 || this.chunkSize > MAX_CHUNK_SIZE) {
      throw new RangeError(`chunk size must be between 1 and ${MAX_CHUNK_SIZE} bytes`);
    }
    this.maxStreams = options.maxStreams ?? DEFAULT_MAX_STREAMS;
    this.maxStreamsPerApp = Math.max(1, Math.ceil(this.maxStreams / 2));
    this.windowChunks = options.windowChunks ?? 2;
    this.budget = new ByteBudget(options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED);
    this.pool = new ChunkPool(this.chunkSize, this.budget.limit);
    const { service } = loadProto();
    const decoder = <Req>(method: string): Decoder<Req> => {
      const deserialize = service[method]?.requestDeserialize;
      if (!deserialize) throw new Error(`proto has no method ${method}`);
      return deserialize as Decoder<Req>;
    };
    const encoder = <Res>(method: string): ((m: Res) => Buffer) => {
      const serialize = service[method]?.responseSerialize as ((m: Res) => Buffer) | undefined;
      if (!serialize) throw new Error(`proto has no method ${method}`);
      return (m) => frameMessage(serialize(m));
    };
    const routes = new Map<string, CallHandler>();
    const route = <Req, Res>(method: string, kind: StreamKind, encode: (m: Res) => Buffer, body: (req: Req, ctx: StreamContext<Res>) => Promise<void>): void => {
      const decode = decoder<Req>(method);
      routes.set(`${SERVICE_PATH}/${method}`, (call, message) => void this.stream(call, kind, decode, message, encode, body));
    };
    // Chunks are framed by hand, in the payload's headroom: see chunk-codec.ts.
    route<FetchShuffleBlockRequest, Chunk>('FetchShuffleBlock', 'limited', encodeChunkFrame, (req, ctx) => this.fetchShuffleBlock(req, ctx));
    route<FetchBlockFileRangeRequest, Chunk>('FetchBlockFileRange', 'limited', encodeChunkFrame, (req, ctx) => this.fetchBlockFileRange(req, ctx));
    route<ListMapOutputsRequest, MapOutputInfo>('ListMapOutputs', 'limited', encoder('ListMapOutputs'), (req, ctx) => this.listMapOutputs(req, ctx));
    // A unary call is a stream of one message as far as the wire is concerned.
    route<unknown, AgentStatus>('GetStatus', 'unary', encoder('GetStatus'), async (_req, ctx) => void (await ctx.writer.write(toStatusMessage(this.lifecycle().status()))));
    route<unknown, AgentStatus>('WatchStatus', 'control', encoder('WatchStatus'), (_req, ctx) => this.watchStatus(ctx));
    route<DrainRequest, DrainProgressMessage>('Drain', 'control', encoder('Drain'), (req, ctx) => this.drain(req, ctx));
    this.server = new H2GrpcServer(routes, {
      ...(options.tls ? { tls: options.tls } : {}),
      // Requests are a few ids: anything large is hostile.
      maxRequestBytes: 64 * 1024,
      // Per connection: the service-wide limits (--grpc-max-streams, the 64 control streams) bound
      // what runs; this bounds what one peer can hold open before any of it is admitted.
      maxConcurrentStreams: options.maxStreamsPerConnection ?? DEFAULT_MAX_STREAMS_PER_CONNECTION,
      // Above what the byte budget lets one connection queue, so a busy peer is not refused.
      maxSessionMemoryMb: Math.ceil(this.budget.limit / (1024 * 1024)) + 16,
      requestBodyTimeoutMs: options.requestBodyTimeoutMs ?? DEFAULT_REQUEST_BODY_TIMEOUT_MS,
      authenticate: (headers) => this.access.authenticate(headers.authorization),
      onUnauthenticated: (code) => this.metrics.error(statusName(code)),
      // Pings find peers that vanished without closing (a killed executor): their streams are
      // cancelled and give back their share of the byte budget.
      keepaliveMs: 60_000,
      keepaliveTimeoutMs: 20_000,
      maxConnections: options.maxConnections ?? DEFAULT_MAX_CONNECTIONS,
      idleTimeoutMs: options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
      stallTimeoutMs: options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS,
    });
  }

  async start(): Promise<RunningGrpcServer> {
    const port = await this.server.listen(this.options.host, this.options.port);
    this.deps.logger?.info({ port, tls: this.options.tls !== undefined, mtls: this.options.tls?.clientCa !== undefined, token: this.token !== undefined }, 'gRPC block service listening');
    return {
      port,
      activeStreams: () => this.limited,
      bufferedBytes: () => this.budget.inUse,
      rotateToken: (token) => {
        if (!this.token) throw new Error('this gRPC server was started without a token');
        this.token.rotate(token);
      },
      rotateAppKeys: (keys) => {
        if (!this.hasAppKey) throw new Error('this gRPC server was started without a per-app key');
        this.access.rotateAppKeys(keys);
      },
      close: (graceMs = 5000) => (this.closing ??= this.close(graceMs)),
    };
  }

  private async close(graceMs: number): Promise<void> {
    this.stopping.abort();
    const callsAtClose = this.server.activeCalls;
    if (await this.server.close(graceMs)) this.deps.logger?.warn({ callsAtClose, graceMs }, 'gRPC calls still running at the close deadline were cut');
    await this.handles.close();
  }

  /** Common frame of every call: auth, limits, decoding, status, metrics. */
  private async stream<Req, Res>(
    call: GrpcCall,
    kind: StreamKind,
    decode: Decoder<Req>,
    message: Buffer,
    encode: (m: Res) => Buffer,
    body: (req: Req, ctx: StreamContext<Res>) => Promise<void>,
  ): Promise<void> {
    const unary = kind === 'unary';
    if (!unary) this.metrics.streamOpened();
    const writer = new StreamWriter<Res>(call, encode, this.windowChunks);
    let counted: 'limited' | 'control' | undefined;
    let appControl = false;
    let perApp: string | undefined;
    try {
      // Credentials were checked at the headers (call.grant); what they allow is checked here.
      if (kind === 'control' && call.path.endsWith('/Drain') && call.grant.kind === 'app') throw permissionDenied('a per-app token cannot drain the agent');
      let req: Req;
      try {
        req = decode(message);
      } catch (err) {
        throw new ServeError(status.INVALID_ARGUMENT, `malformed request message: ${describeError(err)}`);
      }
      if (kind === 'limited') {
        if (this.limited >= this.maxStreams) throw new ServeError(status.RESOURCE_EXHAUSTED, `more than ${this.maxStreams} concurrent streams`);
        // One app may hold half the streams at most: a tenant's flood leaves the others room.
        const app = (req as { app_id?: unknown }).app_id;
        if (typeof app === 'string') {
          const held = this.perAppStreams.get(app) ?? 0;
          if (held >= this.maxStreamsPerApp) throw new ServeError(status.RESOURCE_EXHAUSTED, `more than ${this.maxStreamsPerApp} concurrent streams for one app`);
          this.perAppStreams.set(app, held + 1);
          perApp = app;
        }
        this.limited++;
        counted = kind;
      } else if (kind === 'control') {
        if (this.control >= MAX_CONTROL_STREAMS) throw new ServeError(status.RESOURCE_EXHAUSTED, `more than ${MAX_CONTROL_STREAMS} status and drain streams`);
        if (call.grant.kind === 'app') {
          if (this.appControl >= MAX_APP_CONTROL_STREAMS) throw new ServeError(status.RESOURCE_EXHAUSTED, `more than ${MAX_APP_CONTROL_STREAMS} status streams with per-app tokens`);
          this.appControl++;
          appControl = true;
        }
        this.control++;
        counted = kind;
      }
      await body(req, { signal: call.signal, stopping: this.stopping.signal, writer, grant: call.grant });
      if (call.signal.aborted) this.metrics.error(call.abortReason ?? 'CANCELLED');
      else call.end();
    } catch (err) {
      const e = toServeError(err);
      this.metrics.error(call.signal.aborted ? (call.abortReason ?? 'CANCELLED') : statusName(e.code));
      if (e.code === status.UNAVAILABLE || e.code === status.INTERNAL) {
        this.deps.logger?.warn({ method: call.path, err: e }, 'gRPC call failed');
      }
      call.fail(e.code, e.message);
    } finally {
      if (counted === 'limited') this.limited--;
      else if (counted === 'control') this.control--;
      if (appControl) this.appControl--;
      if (perApp !== undefined) {
        const held = (this.perAppStreams.get(perApp) ?? 1) - 1;
        if (held === 0) this.perAppStreams.delete(perApp);
        else this.perAppStreams.set(perApp, held);
      }
      writer.dispose();
      if (!unary) this.metrics.streamClosed();
    }
  }

  /**
   * May this caller read `appId` here? A per-app token names one app; an app this agent does not
   * serve (another pod's, one never seen on this node) is NOT_FOUND, as if absent, whatever the
   * store holds.
   */
  private checkApp(grant: Grant, appId: string): void {
    if (grant.kind === 'app' && grant.appId !== appId) throw permissionDenied('the token is for another app');
    if (this.deps.servesApp && !this.deps.servesApp(appId)) throw notFound('this agent serves no such app');
  }

  private async fetchShuffleBlock(req: FetchShuffleBlockRequest, ctx: StreamContext<Chunk>): Promise<void> {
    const ids = validateIds(req.app_id, req.shuffle_id, req.map_id);
    this.checkApp(ctx.grant, ids.appId);
    const range = await resolvePartitions(this.resolveDeps(), ids, req.start_reduce_id, req.end_reduce_id);
    await this.sendRange(range, ctx);
  }

  private async fetchBlockFileRange(req: FetchBlockFileRangeRequest, ctx: StreamContext<Chunk>): Promise<void> {
    const ids = validateIds(req.app_id, req.shuffle_id, req.map_id);
    this.checkApp(ctx.grant, ids.appId);
    const file = req.file === 'BLOCK_FILE_TYPE_DATA' ? 'data' : req.file === 'BLOCK_FILE_TYPE_INDEX' ? 'index' : undefined;
    if (!file) throw invalid('file must be BLOCK_FILE_TYPE_DATA or BLOCK_FILE_TYPE_INDEX');
    const range = await resolveFileRange(this.resolveDeps(), ids, file, int64Field('start', req.start), int64Field('length', req.length));
    await this.sendRange(range, ctx);
  }

  /**
   * Send `[start, end)` in chunks, read one at a time as the transport takes the previous ones.
   * A source that fails (a held descriptor closed after write-back, a file deleted, a store
   * error) hands over to the next one at the current offset.
   */
  private async sendRange(range: ResolvedRange, ctx: StreamContext<Chunk>): Promise<void> {
    const { start, end } = range;
    let position = start;
    const sent: Record<BlockSourceKind, number> = { local: 0, store: 0 };
    const failures: unknown[] = [];
    const lease = this.budget.lease();
    try {
      for (const source of range.sources) {
        if (position >= end || ctx.signal.aborted) break;
        let reader;
        try {
          reader = await source.open(position, end);
        } catch (err) {
          failures.push(err);
          this.deps.logger?.debug({ source: source.describe, err: describeError(err) }, 'block source cannot serve');
          continue;
        }
        try {
          const kind = source.kind === 'local' ? 'BLOCK_SOURCE_LOCAL' : 'BLOCK_SOURCE_STORE';
          while (position < end) {
            const want = Math.min(this.currentChunkSize(), end - position);
            if (!(await lease.acquire(want, ctx.signal))) return;
            let data: Buffer | null;
            try {
              data = await reader.next(want, this.takeBuffer);
            } catch (err) {
              lease.release(want);
              throw err;
            }
            if (data === null) {
              lease.release(want);
              break;
            }
            const size = data.length;
            lease.release(want - size);
            const first = position === start;
            const sentData = data;
            const written = await ctx.writer.write({ data, offset: position - start, total_length: first ? end - start : 0, source: kind }, () => {
              lease.release(size);
              // The socket took the bytes before the write called back: the buffer is free.
              this.pool.give(sentData);
            });
            if (!written) return;
            position += data.length;
            sent[source.kind] += data.length;
          }
        } catch (err) {
          failures.push(err);
          this.deps.logger?.debug({ source: source.describe, at: position, err: describeError(err) }, 'block source failed mid-range; trying the next');
        } finally {
          await reader.close();
        }
      }
      if (position < end && !ctx.signal.aborted) {
        if (position === start && failures.every((f) => f instanceof NotFoundError)) throw new ServeError(status.NOT_FOUND, 'map output is gone from local disk and store');
        throw unavailable(`neither local disk nor store can serve bytes from offset ${position - start}: ${failures.map(describeError).join('; ')}`);
      }
    } finally {
      // The last chunks may still be on their way to the socket: their bytes stay in the budget
      // until they are (or the stream is reset), however soon the handler ends.
      void ctx.writer.idle().then(() => lease.close());
      let reported = false;
      for (const kind of ['local', 'store'] as const) {
        if (sent[kind] > 0) {
          this.metrics.fetch(kind, sent[kind]);
          reported = true;
        }
      }
      if (!reported) this.metrics.fetch(range.sources[0]?.kind ?? 'local', 0);
    }
  }

  /**
   * The chunk size now: the configured size, smaller when so many streams are open that their
   * chunks would not fit the byte budget (never below 64 KiB). Memory stays near the budget
   * however many streams are open.
   */
  private currentChunkSize(): number {
    const share = Math.floor(this.budget.limit / Math.max(1, this.limited) / MIN_CHUNK) * MIN_CHUNK;
    return Math.min(this.chunkSize, Math.max(MIN_CHUNK, share));
  }

  private async listMapOutputs(req: ListMapOutputsRequest, ctx: StreamContext<MapOutputInfo>): Promise<void> {
    const ids = validateIds(req.app_id, 0, '0');
    this.checkApp(ctx.grant, ids.appId);
    const shuffleIds = [...new Set(req.shuffle_ids ?? [])];
    // Each id is one store LIST, made one after the other: a request naming 30,000 would keep
    // the store busy for minutes on a single call.
    if (shuffleIds.length > MAX_LIST_SHUFFLE_IDS) throw invalid(`at most ${MAX_LIST_SHUFFLE_IDS} distinct shuffle_ids per call (got ${shuffleIds.length}); name none to list the whole app`);
    for (const s of shuffleIds) validateIds(ids.appId, s, '0');
    let count = 0;
    for await (const info of listMapOutputs(this.resolveDeps(), ids.appId, shuffleIds, ctx.signal)) {
      if (!(await ctx.writer.write(info))) return;
      count++;
    }
    if (count === 0) throw new ServeError(status.NOT_FOUND, `no map outputs of app ${ids.appId}${shuffleIds.length ? ` in ${shuffleIds.length === 1 ? `shuffle ${shuffleIds[0]}` : `the ${shuffleIds.length} shuffles named`}` : ''}`);
  }

  private async watchStatus(ctx: StreamContext<AgentStatus>): Promise<void> {
    const lifecycle = this.lifecycle();
    const queue: StatusSnapshot[] = [lifecycle.status()];
    let wake: (() => void) | undefined;
    const unsubscribe = lifecycle.onStateChange((s) => {
      queue.push(s);
      wake?.();
    });
    const stop = (): void => wake?.();
    ctx.stopping.addEventListener('abort', stop);
    ctx.signal.addEventListener('abort', stop);
    try {
      while (!ctx.signal.aborted && !ctx.stopping.aborted) {
        const next = queue.shift();
        if (next) {
          if (!(await ctx.writer.write(toStatusMessage(next)))) return;
          continue;
        }
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      unsubscribe();
      ctx.stopping.removeEventListener('abort', stop);
      ctx.signal.removeEventListener('abort', stop);
    }
  }

  private async drain(req: DrainRequest, ctx: StreamContext<DrainProgressMessage>): Promise<void> {
    const lifecycle = this.lifecycle();
    const reason = typeof req.reason === 'string' && req.reason !== '' ? req.reason.slice(0, 200) : 'grpc drain request';
    const signal = AbortSignal.any([ctx.signal, ctx.stopping]);
    for await (const p of lifecycle.drain(reason, signal)) {
      if (!(await ctx.writer.write({ status: toStatusMessage(p.status), done: p.done }))) return;
      if (p.done) return;
    }
    if (ctx.stopping.aborted && !ctx.signal.aborted) throw unavailable('the agent is stopping');
  }

  private lifecycle(): LifecycleView {
    if (!this.deps.lifecycle) throw new ServeError(status.UNIMPLEMENTED, 'this agent has no lifecycle service');
    return this.deps.lifecycle;
  }

  private resolveDeps(): ResolveDeps {
    return { lookup: this.deps.lookup, store: this.deps.store, layout: this.layout, handles: this.handles };
  }
}

function toServeError(err: unknown): ServeError {
  if (err instanceof ServeError) return err;
  return new ServeError(status.INTERNAL, describeError(err), { cause: err });
}

const STATE_NAMES: Record<StatusSnapshot['state'], AgentStateName> = {
  starting: 'AGENT_STATE_STARTING',
  serving: 'AGENT_STATE_SERVING',
  draining: 'AGENT_STATE_DRAINING',
  safe_to_exit: 'AGENT_STATE_SAFE_TO_EXIT',
  stopping: 'AGENT_STATE_STOPPING',
};

export function toStatusMessage(s: StatusSnapshot): AgentStatus {
  return {
    state: STATE_NAMES[s.state] ?? 'AGENT_STATE_UNSPECIFIED',
    state_since_ms: s.since,
    reason: s.reason ?? '',
    deadline_ms: s.deadline ?? 0,
    pending_outputs: s.pendingOutputs,
    pending_bytes: s.pendingBytes,
    persisted_outputs: s.persistedOutputs,
    persisted_bytes: s.persistedBytes,
    failed_files: s.failedFiles,
  };
}
