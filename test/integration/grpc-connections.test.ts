/**
 * Idle gRPC connections (issue 17, item 8): at most `maxConnections` are held open (more are
 * closed as they arrive), a connection without a stream is closed after the idle timeout, and one
 * in use is not; a client that needs the service again reconnects and is served.
 */
import http2 from 'node:http2';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ShuffleAgentClient } from '../../agent/serve/client.js';
import { startGrpcServer, type RunningGrpcServer } from '../../agent/serve/server.js';
import { FileStore } from '../../agent/store/file-store.js';
import { FakeLifecycle, MapLookup, tempDir, writeOutput, type WrittenOutput } from '../support/grpc-fixtures.js';

const APP = 'spark-1d1e';

/** Resolves when the session emits `event` (errors are ignored: a refused peer sees ECONNRESET). */
const when = (s: http2.ClientHttp2Session, event: 'connect' | 'close'): Promise<void> => new Promise((resolve) => s.once(event, () => resolve()));

describe('gRPC connections: a cap and an idle timeout', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let out: WrittenOutput;
  let server: RunningGrpcServer;
  const lookup = new MapLookup();

  beforeAll(async () => {
    dir = await tempDir('grpc-conn-');
    out = await writeOutput(join(dir.path, 'local'), APP, 0, '0', [100, 2000]);
    lookup.add(out.output);
    server = await startGrpcServer(
      { lookup, store: new FileStore(join(dir.path, 'store')), lifecycle: new FakeLifecycle() },
      { host: '127.0.0.1', port: 0, maxConnections: 8, idleTimeoutMs: 400 },
    );
  });

  afterAll(async () => {
    await server.close(500);
    await dir.remove();
  });

  it('holds at most maxConnections, closes idle ones, and serves a client that comes back', async () => {
    // 20 peers connect and open no stream.
    const sessions = Array.from({ length: 20 }, () => {
      const s = http2.connect(`http://127.0.0.1:${server.port}`);
      s.on('error', () => undefined);
      return s;
    });
    const connected = await Promise.all(sessions.map((s) => Promise.race([when(s, 'connect').then(() => true), when(s, 'close').then(() => false)])));
    expect(connected.filter(Boolean).length).toBeGreaterThan(0);
    // Every one of them ends: those over the cap at once, the others when idle for 400 ms.
    const started = Date.now();
    await Promise.all(sessions.map((s) => (s.closed || s.destroyed ? Promise.resolve() : when(s, 'close'))));
    expect(Date.now() - started).toBeLessThan(10_000);

    // A client in use is not cut: a stream keeps its connection, and it is served after reconnecting.
    const client = new ShuffleAgentClient({ target: `127.0.0.1:${server.port}` });
    try {
      for (let i = 0; i < 3; i++) {
        const got = await client.fetchBlock({ app_id: APP, shuffle_id: 0, map_id: 0, start_reduce_id: 0, end_reduce_id: 2 }, { deadline: Date.now() + 5000 });
        expect(got.equals(out.data as Buffer)).toBe(true);
        // Longer than the idle timeout between fetches: the connection is gone, grpc-js reconnects.
        await new Promise((r) => setTimeout(r, 600));
      }
    } finally {
      client.close();
    }
  });

  it('a connection with an open stream is not idle', async () => {
    const session = http2.connect(`http://127.0.0.1:${server.port}`);
    session.on('error', () => undefined);
    await when(session, 'connect');
    // A WatchStatus-like stream the client keeps open: a request whose body never ends.
    const stream = session.request({ ':method': 'POST', ':path': '/spark.shuffleagent.v1.ShuffleAgent/WatchStatus', 'content-type': 'application/grpc', te: 'trailers' });
    stream.on('error', () => undefined);
    const closedEarly = Promise.race([when(session, 'close').then(() => true), new Promise((r) => setTimeout(() => r(false), 1_500))]);
    expect(await closedEarly).toBe(false);
    stream.close();
    await when(session, 'close');
  });
});
