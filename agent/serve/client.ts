/**
 * A small client of the block service, for peers and for `shuffle-agent fetch`.
 *
 * The HTTP/2 flow-control window is raised to 16 MiB: with the default 64 KiB a grpc-js client
 * takes about 245 MiB/s from a local server, with 16 MiB about 450 MiB/s.
 */
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import {
  loadProto,
  type AgentStatus,
  type Chunk,
  type DrainProgressMessage,
  type FetchBlockFileRangeRequest,
  type FetchShuffleBlockRequest,
  type MapOutputInfo,
} from './proto.js';

export const CLIENT_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc-node.flow_control_window': 16 * 1024 * 1024,
  'grpc.max_receive_message_length': 16 * 1024 * 1024,
};

export interface ClientTls {
  /** PEM CA bundle that signed the server's certificate (system roots when absent). */
  ca?: Buffer;
  /** Client certificate and key, for mTLS. */
  cert?: Buffer;
  key?: Buffer;
}

export interface ShuffleAgentClientOptions {
  /** `host:port`. */
  target: string;
  token?: string;
  tls?: ClientTls;
  channelOptions?: grpc.ChannelOptions;
}

export interface CallOptions {
  signal?: AbortSignal;
  /** Absolute deadline, ms since epoch or a Date. */
  deadline?: grpc.Deadline;
}

/** The generated client's methods, as grpc-js builds them from the proto. */
interface RawClient extends grpc.Client {
  FetchShuffleBlock(req: FetchShuffleBlockRequest, metadata: grpc.Metadata, options: grpc.CallOptions): grpc.ClientReadableStream<Chunk>;
  FetchBlockFileRange(req: FetchBlockFileRangeRequest, metadata: grpc.Metadata, options: grpc.CallOptions): grpc.ClientReadableStream<Chunk>;
  ListMapOutputs(req: { app_id: string; shuffle_ids: number[] }, metadata: grpc.Metadata, options: grpc.CallOptions): grpc.ClientReadableStream<MapOutputInfo>;
  GetStatus(req: object, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<AgentStatus>): grpc.ClientUnaryCall;
  WatchStatus(req: object, metadata: grpc.Metadata, options: grpc.CallOptions): grpc.ClientReadableStream<AgentStatus>;
  Drain(req: { reason: string }, metadata: grpc.Metadata, options: grpc.CallOptions): grpc.ClientReadableStream<DrainProgressMessage>;
}

export class ShuffleAgentClient {
  private readonly raw: RawClient;
  private readonly token: string | undefined;

  constructor(options: ShuffleAgentClientOptions) {
    const { Client } = loadProto();
    const creds = options.tls
      ? grpc.credentials.createSsl(options.tls.ca ?? null, options.tls.key ?? null, options.tls.cert ?? null)
      : grpc.credentials.createInsecure();
    this.raw = new Client(options.target, creds, { ...CLIENT_CHANNEL_OPTIONS, ...options.channelOptions }) as unknown as RawClient;
    this.token = options.token;
  }

  /** Chunks of reduce partitions [start, end) of one map output, as they arrive. */
  fetchShuffleBlock(req: FetchShuffleBlockRequest, options: CallOptions = {}): grpc.ClientReadableStream<Chunk> {
    return this.bind(this.raw.FetchShuffleBlock(req, this.metadata(), this.callOptions(options)), options);
  }

  fetchBlockFileRange(req: FetchBlockFileRangeRequest, options: CallOptions = {}): grpc.ClientReadableStream<Chunk> {
    return this.bind(this.raw.FetchBlockFileRange(req, this.metadata(), this.callOptions(options)), options);
  }

  /** The bytes of reduce partitions [start, end), in one buffer (checks offsets and length). */
  async fetchBlock(req: FetchShuffleBlockRequest, options: CallOptions = {}): Promise<Buffer> {
    const parts: Buffer[] = [];
    let size = 0;
    let total: number | undefined;
    for await (const chunk of this.fetchShuffleBlock(req, options) as AsyncIterable<Chunk>) {
      if (Number(chunk.offset) !== size) throw new Error(`chunk at offset ${String(chunk.offset)}, expected ${size}`);
      total ??= Number(chunk.total_length);
      parts.push(chunk.data);
      size += chunk.data.length;
    }
    if (total !== undefined && size !== total) throw new Error(`received ${size} bytes, the server announced ${total}`);
    return Buffer.concat(parts, size);
  }

  /** Stream the bytes into `sink` with backpressure; resolves to the byte count. */
  async fetchBlockTo(req: FetchShuffleBlockRequest, sink: Writable, options: CallOptions = {}): Promise<number> {
    let size = 0;
    for await (const chunk of this.fetchShuffleBlock(req, options) as AsyncIterable<Chunk>) {
      if (Number(chunk.offset) !== size) throw new Error(`chunk at offset ${String(chunk.offset)}, expected ${size}`);
      size += chunk.data.length;
      if (!sink.write(chunk.data)) await once(sink, 'drain');
    }
    return size;
  }

  async *listMapOutputs(appId: string, shuffleIds: number[] = [], options: CallOptions = {}): AsyncIterable<MapOutputInfo> {
    yield* this.bind(this.raw.ListMapOutputs({ app_id: appId, shuffle_ids: shuffleIds }, this.metadata(), this.callOptions(options)), options) as AsyncIterable<MapOutputInfo>;
  }

  getStatus(options: CallOptions = {}): Promise<AgentStatus> {
    return new Promise((resolve, reject) => {
      const call = this.raw.GetStatus({}, this.metadata(), this.callOptions(options), (err, value) => (err || !value ? reject(err ?? new Error('empty answer')) : resolve(value)));
      options.signal?.addEventListener('abort', () => call.cancel(), { once: true });
    });
  }

  watchStatus(options: CallOptions = {}): grpc.ClientReadableStream<AgentStatus> {
    return this.bind(this.raw.WatchStatus({}, this.metadata(), this.callOptions(options)), options);
  }

  drain(reason: string, options: CallOptions = {}): grpc.ClientReadableStream<DrainProgressMessage> {
    return this.bind(this.raw.Drain({ reason }, this.metadata(), this.callOptions(options)), options);
  }

  close(): void {
    this.raw.close();
  }

  private metadata(): grpc.Metadata {
    const m = new grpc.Metadata();
    if (this.token !== undefined) m.set('authorization', `Bearer ${this.token}`);
    return m;
  }

  private callOptions(options: CallOptions): grpc.CallOptions {
    return options.deadline !== undefined ? { deadline: options.deadline } : {};
  }

  private bind<T extends grpc.ClientReadableStream<unknown>>(call: T, options: CallOptions): T {
    const signal = options.signal;
    if (signal) {
      if (signal.aborted) call.cancel();
      else {
        const onAbort = (): void => call.cancel();
        signal.addEventListener('abort', onAbort, { once: true });
        call.once('close', () => signal.removeEventListener('abort', onAbort));
      }
    }
    return call;
  }
}
