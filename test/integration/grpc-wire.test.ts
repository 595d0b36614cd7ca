/**
 * The server's gRPC-over-HTTP/2 layer with hand-made requests (node:http2 as a raw client):
 * malformed, hostile and unusual requests get a clear status and never crash or hang the server.
 */
import { once } from 'node:events';
import http2, { type IncomingHttpHeaders } from 'node:http2';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { status } from '@grpc/grpc-js';
import { ShuffleAgentClient } from '../../agent/serve/client.js';
import { loadProto, SERVICE_PATH, type Chunk } from '../../agent/serve/proto.js';
import { startGrpcServer, type RunningGrpcServer } from '../../agent/serve/server.js';
import { FileStore } from '../../agent/store/file-store.js';
import { frameMessage } from '../../agent/serve/grpc-wire.js';
import { FakeLifecycle, MapLookup, RecordingMetrics, tempDir, writeOutput, type WrittenOutput } from '../support/grpc-fixtures.js';
import { until } from '../kit/wait.js';

const APP = 'spark-wire';
const FETCH = `${SERVICE_PATH}/FetchShuffleBlock`;

interface RawAnswer {
  httpStatus: number;
  grpcStatus: number | undefined;
  grpcMessage: string;
  /** Response body (framed messages). */
  body: Buffer;
}

describe('gRPC wire layer', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let server: RunningGrpcServer;
  let out: WrittenOutput;
  let session: http2.ClientHttp2Session;
  const metrics = new RecordingMetrics();
  const encodeRequest = loadProto().service.FetchShuffleBlock?.requestSerialize as (r: object) => Buffer;

  beforeAll(async () => {
    dir = await tempDir('grpc-wire-');
    out = await writeOutput(join(dir.path, 'local'), APP, 0, '0', [10, 70_000, 0]);
    server = await startGrpcServer({ lookup: new MapLookup().add(out.output), store: new FileStore(join(dir.path, 'store')), lifecycle: new FakeLifecycle(), metrics }, { host: '127.0.0.1', port: 0 });
    session = http2.connect(`http://127.0.0.1:${server.port}`);
    await once(session, 'connect');
  });

  afterAll(async () => {
    session?.close();
    await server?.close(500);
    await dir?.remove();
  });

  /** One request on the raw session; resolves with what came back. */
  function raw(path: string, body: Buffer | Buffer[], headers: Record<string, string> = {}, method = 'POST', endAfterMs = 0): Promise<RawAnswer> {
    return new Promise((resolve, reject) => {
      const req = session.request({ ':method': method, ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...headers });
      let head: IncomingHttpHeaders = {};
      let trailers: IncomingHttpHeaders = {};
      const parts: Buffer[] = [];
      req.on('response', (h) => (head = h));
      req.on('trailers', (t) => (trailers = t));
      req.on('data', (d: Buffer) => parts.push(d));
      req.on('error', reject);
      req.on('close', () => {
        const s = trailers['grpc-status'] ?? head['grpc-status'];
        resolve({
          httpStatus: Number(head[':status']),
          grpcStatus: s === undefined ? undefined : Number(s),
          grpcMessage: decodeURIComponent(String(trailers['grpc-message'] ?? head['grpc-message'] ?? '')),
          body: Buffer.concat(parts),
        });
      });
      for (const b of Array.isArray(body) ? body : [body]) req.write(b);
      if (endAfterMs > 0) setTimeout(() => req.end(), endAfterMs);
      else req.end();
    });
  }

  /** Fetch a 70 KB partition and never read it (it outgrows the 64 KiB HTTP/2 window): how the stream ended. */
  async function stalledFetch(on: http2.ClientHttp2Session, headers: Record<string, string>): Promise<{ rstCode: number | undefined; ms: number }> {
    const started = Date.now();
    const req = on.request({ ':method': 'POST', ':path': FETCH, 'content-type': 'application/grpc', te: 'trailers', ...headers });
    req.on('error', () => undefined);
    req.pause();
    req.end(goodRequest());
    await once(req, 'close');
    return { rstCode: req.rstCode, ms: Date.now() - started };
  }

  const goodRequest = (): Buffer => frameMessage(encodeRequest({ app_id: APP, shuffle_id: 0, map_id: '0', start_reduce_id: 1, end_reduce_id: 2 }));

  it('answers a well-formed hand-made request with framed chunks and grpc-status 0 in trailers', async () => {
    // The request split across DATA frames arrives whole all the same.
    const req = goodRequest();
    const a = await raw(FETCH, [req.subarray(0, 3), req.subarray(3, 9), req.subarray(9)]);
    expect(a).toMatchObject({ httpStatus: 200, grpcStatus: status.OK });
    const decode = loadProto().service.FetchShuffleBlock?.responseDeserialize as (b: Buffer) => Chunk;
    const data: Buffer[] = [];
    for (let at = 0; at < a.body.length; ) {
      expect(a.body[at]).toBe(0);
      const len = a.body.readUInt32BE(at + 1);
      data.push(decode(a.body.subarray(at + 5, at + 5 + len)).data);
      at += 5 + len;
    }
    expect(Buffer.concat(data).equals((out.data as Buffer).subarray(10, 70_010))).toBe(true);
  });

  it('refuses what is not a gRPC call with HTTP 405 / 415, and unknown methods with UNIMPLEMENTED', async () => {
    expect((await raw(FETCH, goodRequest(), {}, 'PUT')).httpStatus).toBe(405);
    expect((await raw(FETCH, goodRequest(), { 'content-type': 'application/json' })).httpStatus).toBe(415);
    const unknown = await raw(`${SERVICE_PATH}/DeleteEverything`, goodRequest());
    expect(unknown).toMatchObject({ httpStatus: 200, grpcStatus: status.UNIMPLEMENTED });
    expect(unknown.grpcMessage).toContain('DeleteEverything');
    expect((await raw('/../../etc/passwd', goodRequest())).grpcStatus).toBe(status.UNIMPLEMENTED);
  });

  it('refuses malformed request bodies with a status that names the problem', async () => {
    const msg = encodeRequest({ app_id: APP, shuffle_id: 0, map_id: '0', start_reduce_id: 1, end_reduce_id: 2 });
    const compressed = frameMessage(msg);
    compressed[0] = 1;
    const truncated = frameMessage(msg).subarray(0, 10);
    const lying = frameMessage(msg);
    lying.writeUInt32BE(1000, 1);
    const cases: Array<[string, Buffer | Buffer[], number, RegExp]> = [
      ['empty body', Buffer.alloc(0), status.INVALID_ARGUMENT, /no message/],
      ['half a frame header', Buffer.from([0, 0]), status.INVALID_ARGUMENT, /no message/],
      ['compressed flag', compressed, status.UNIMPLEMENTED, /compress/],
      ['truncated message', truncated, status.INVALID_ARGUMENT, /truncated/],
      ['length past the body', lying, status.INVALID_ARGUMENT, /truncated/],
      ['two messages', [frameMessage(msg), frameMessage(msg)], status.INVALID_ARGUMENT, /more than one/],
      ['not protobuf', frameMessage(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff])), status.INVALID_ARGUMENT, /malformed request/],
      ['wrong field types', frameMessage(Buffer.from([0x08, 0x96, 0x01])), status.INVALID_ARGUMENT, /./],
    ];
    for (const [name, body, code, message] of cases) {
      const a = await raw(FETCH, body);
      expect(a.grpcStatus, name).toBe(code);
      expect(a.grpcMessage, name).toMatch(message);
    }
  });

  it('refuses a request message over 64 KiB with RESOURCE_EXHAUSTED without reading it all', async () => {
    const big = frameMessage(encodeRequest({ app_id: 'a'.repeat(200_000), shuffle_id: 0, map_id: '0', start_reduce_id: 0, end_reduce_id: 1 }));
    const a = await raw(FETCH, big);
    expect(a.grpcStatus).toBe(status.RESOURCE_EXHAUSTED);
    expect(a.grpcMessage).toMatch(/larger than 65536/);
  });

  it('honours grpc-timeout and refuses a malformed one', async () => {
    expect((await raw(FETCH, goodRequest(), { 'grpc-timeout': 'soon' })).grpcStatus).toBe(status.INVALID_ARGUMENT);
    expect((await raw(FETCH, goodRequest(), { 'grpc-timeout': '123456789S' })).grpcStatus).toBe(status.INVALID_ARGUMENT);
    expect((await raw(FETCH, goodRequest(), { 'grpc-timeout': '5S' })).grpcStatus).toBe(status.OK);
    // The deadline passes before the request is whole: DEADLINE_EXCEEDED, and no data.
    const expired = await raw(FETCH, goodRequest(), { 'grpc-timeout': '2m' }, 'POST', 100);
    expect(expired).toMatchObject({ grpcStatus: status.DEADLINE_EXCEEDED, body: Buffer.alloc(0) });
  });

  it('resets a stream whose client stopped reading once its deadline passes, freeing it', async () => {
    const stalled = await stalledFetch(session, { 'grpc-timeout': '300m' });
    expect(stalled.rstCode).toBe(http2.constants.NGHTTP2_CANCEL);
    expect(stalled.ms).toBeGreaterThanOrEqual(250);
    await metrics.idle();
    expect(server.activeStreams()).toBe(0);
  });

  it('resets a stream whose client stopped reading after the stall timeout, without a deadline', async () => {
    const stallServer = await startGrpcServer({ lookup: new MapLookup().add(out.output), store: new FileStore(join(dir.path, 'store')) }, { host: '127.0.0.1', port: 0, stallTimeoutMs: 300 });
    const s = http2.connect(`http://127.0.0.1:${stallServer.port}`);
    try {
      const stalled = await stalledFetch(s, {});
      expect(stalled.rstCode).toBe(http2.constants.NGHTTP2_CANCEL);
      expect(stalled.ms).toBeGreaterThanOrEqual(250);
      // What the reset stream had in flight is back in the budget.
      await until(async () => stallServer.bufferedBytes() === 0, 'budget released');
      // A client that reads normally is not cut, however long the stall timeout is exceeded in total.
      const client = new ShuffleAgentClient({ target: `127.0.0.1:${stallServer.port}` });
      try {
        for (let i = 0; i < 3; i++) expect((await client.fetchBlock({ app_id: APP, shuffle_id: 0, map_id: 0, start_reduce_id: 1, end_reduce_id: 2 })).length).toBe(70_000);
        await until(async () => stallServer.bufferedBytes() === 0, 'budget released after normal fetches');
      } finally {
        client.close();
      }
    } finally {
      s.close();
      await stallServer.close(500);
    }
  });

  it('percent-encodes status messages that are not printable ASCII', async () => {
    const msg = encodeRequest({ app_id: 'spark-ünï%cøde', shuffle_id: 0, map_id: '0', start_reduce_id: 0, end_reduce_id: 1 });
    const a = await raw(FETCH, frameMessage(msg));
    expect(a.grpcStatus).toBe(status.INVALID_ARGUMENT);
    expect(a.grpcMessage).toContain('spark-ünï%cøde');
  });

  it('survives peers that do not speak HTTP/2, and keeps serving', async () => {
    // HTTP/1.1 on the h2c port, then garbage, then a client that connects and leaves.
    for (const payload of ['GET / HTTP/1.1\r\nHost: x\r\n\r\n', '\x00\x01\x02 not a preface at all', '']) {
      const socket = connect(server.port, '127.0.0.1');
      await once(socket, 'connect');
      socket.end(payload);
      socket.resume();
      await once(socket, 'close');
    }
    const client = new ShuffleAgentClient({ target: `127.0.0.1:${server.port}` });
    try {
      const got = await client.fetchBlock({ app_id: APP, shuffle_id: 0, map_id: 0, start_reduce_id: 0, end_reduce_id: 1 });
      expect(got.equals((out.data as Buffer).subarray(0, 10))).toBe(true);
    } finally {
      client.close();
    }
  });

  it('a client resetting its streams leaves nothing running', async () => {
    for (let i = 0; i < 20; i++) {
      const req = session.request({ ':method': 'POST', ':path': FETCH, 'content-type': 'application/grpc', te: 'trailers' });
      req.on('error', () => undefined);
      req.end(goodRequest());
      // Reset as soon as the response starts.
      await once(req, 'response');
      req.close(http2.constants.NGHTTP2_CANCEL);
      await once(req, 'close');
    }
    await metrics.idle();
    expect(server.activeStreams()).toBe(0);
  });
});
