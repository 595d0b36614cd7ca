/**
 * The block service as a tenant would attack it, over real sockets: per-app tokens (an app's token
 * reads that app only and cannot drain), apps the agent does not serve (NOT_FOUND although the
 * store holds them), ListMapOutputs with thousands of shuffle ids (refused before any store LIST),
 * and client input echoed in `grpc-message` (cut short).
 */
import http2 from 'node:http2';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServiceError } from '@grpc/grpc-js';
import { appToken } from '../../agent/serve/auth.js';
import { ShuffleAgentClient, type ShuffleAgentClientOptions } from '../../agent/serve/client.js';
import { frameMessage } from '../../agent/serve/grpc-wire.js';
import { startGrpcServer, type GrpcServerOptions, type RunningGrpcServer, type GrpcServerDeps } from '../../agent/serve/server.js';
import { FileStore } from '../../agent/store/file-store.js';
import { statusOf } from '../support/grpc-client-helpers.js';
import { FakeLifecycle, MapLookup, storeOutput, tempDir, writeBigOutput, writeOutput, type WrittenOutput } from '../support/grpc-fixtures.js';
import { once } from 'node:events';

const APP_A = 'spark-aaaa';
const APP_B = 'spark-bbbb';
const KEY = Buffer.from('0123456789abcdef0123456789abcdef-cluster-key');
/** An hour from now, in seconds: when the tests' tokens expire. */
const LATER = Math.floor(Date.now() / 1000) + 3600;

/** A FileStore that counts LIST calls. */
class ListCountingStore extends FileStore {
  lists = 0;
  override list(prefix: string): ReturnType<FileStore['list']> {
    this.lists++;
    return super.list(prefix);
  }
}

describe('gRPC tenancy and input bounds', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let a: WrittenOutput;
  let b: WrittenOutput;
  let store: ListCountingStore;
  const lookup = new MapLookup();
  const servers: RunningGrpcServer[] = [];
  const clients: ShuffleAgentClient[] = [];

  beforeAll(async () => {
    dir = await tempDir('grpc-tenancy-');
    store = new ListCountingStore(join(dir.path, 'store'));
    a = await writeOutput(join(dir.path, 'local-a'), APP_A, 0, '0', [100, 2000]);
    b = await writeOutput(join(dir.path, 'local-b'), APP_B, 0, '0', [300, 400]);
    lookup.add(a.output);
    // App B's output is only in the store (its executor ran on another node, or is gone).
    await storeOutput(store, b.output);
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await Promise.all(servers.map((s) => s.close(500)));
    await dir.remove();
  });

  async function serve(options: Omit<GrpcServerOptions, 'host' | 'port'>, deps: Partial<GrpcServerDeps> = {}): Promise<number> {
    const s = await startGrpcServer({ lookup, store, lifecycle: new FakeLifecycle(), ...deps }, { host: '127.0.0.1', port: 0, ...options });
    servers.push(s);
    return s.port;
  }

  function client(port: number, options: Omit<ShuffleAgentClientOptions, 'target'> = {}): ShuffleAgentClient {
    const c = new ShuffleAgentClient({ target: `127.0.0.1:${port}`, ...options });
    clients.push(c);
    return c;
  }

  const fetch = (c: ShuffleAgentClient, app: string): Promise<Buffer> =>
    c.fetchBlock({ app_id: app, shuffle_id: 0, map_id: 0, start_reduce_id: 0, end_reduce_id: 2 }, { deadline: Date.now() + 5000 });

  const list = async (c: ShuffleAgentClient, app: string, shuffles: number[] = []): Promise<number> => {
    let n = 0;
    for await (const _ of c.listMapOutputs(app, shuffles, { deadline: Date.now() + 20_000 })) n++;
    return n;
  };

  const drain = async (c: ShuffleAgentClient): Promise<void> => {
    for await (const p of c.drain('test')) if (p.done) return;
  };

  it('key rotation (issue 17, item 9): tokens under either of two keys work during the overlap, then only the new; tokens expire', async () => {
    const OLD = Buffer.from('old-cluster-key-old-cluster-key-old-cluster-key');
    const NEW = Buffer.from('new-cluster-key-new-cluster-key-new-cluster-key');
    const s = await startGrpcServer({ lookup, store, lifecycle: new FakeLifecycle() }, { host: '127.0.0.1', port: 0, appKeys: [OLD] });
    servers.push(s);
    const underOld = client(s.port, { token: appToken(OLD, APP_A, LATER) });
    const underNew = client(s.port, { token: appToken(NEW, APP_A, LATER) });
    expect((await fetch(underOld, APP_A)).equals(a.data as Buffer)).toBe(true);
    expect(await statusOf(fetch(underNew, APP_A))).toBe('UNAUTHENTICATED');
    // Step 2 of the rotation: the new key signs, the old one is still accepted.
    s.rotateAppKeys([NEW, OLD]);
    expect((await fetch(underOld, APP_A)).equals(a.data as Buffer)).toBe(true);
    expect((await fetch(underNew, APP_A)).equals(a.data as Buffer)).toBe(true);
    // Step 3: the old key is gone, and so are its tokens.
    s.rotateAppKeys([NEW]);
    expect(await statusOf(fetch(underOld, APP_A))).toBe('UNAUTHENTICATED');
    expect((await fetch(underNew, APP_A)).equals(a.data as Buffer)).toBe(true);
    // A token past its expiry proves nothing, even under the current key; its expiry cannot be moved.
    const expired = appToken(NEW, APP_A, Math.floor(Date.now() / 1000) - 1);
    const err = await fetch(client(s.port, { token: expired }), APP_A).catch((e: unknown) => e as ServiceError);
    expect(err).toMatchObject({ code: 16, details: expect.stringMatching(/expired/) });
    const extended = expired.replace(/:(\d+):/, `:${LATER}:`);
    expect(await statusOf(fetch(client(s.port, { token: extended }), APP_A))).toBe('UNAUTHENTICATED');
  });

  it('a per-app token reads its own app only, and cannot drain; the node token can do both', async () => {
    const port = await serve({ appKeys: [KEY], token: 'node-admin-token' });
    const asA = client(port, { token: appToken(KEY, APP_A, LATER) });
    expect((await fetch(asA, APP_A)).equals(a.data as Buffer)).toBe(true);
    expect(await statusOf(fetch(asA, APP_B))).toBe('PERMISSION_DENIED');
    expect(await statusOf(list(asA, APP_B))).toBe('PERMISSION_DENIED');
    expect(await statusOf(drain(asA))).toBe('PERMISSION_DENIED');
    expect((await asA.getStatus()).state).toBe('AGENT_STATE_SERVING');
    // A token for B under another key, or with A's MAC under B's name, proves nothing.
    const forged = appToken(Buffer.from('another-key-another-key-another-key!'), APP_B, LATER);
    const renamed = appToken(KEY, APP_A, LATER).replace(`:${APP_A}:`, `:${APP_B}:`);
    for (const token of [forged, renamed, 'sat2:', `sat2:${APP_B}`, `sat2:${APP_B}:${LATER}:`, 'node-admin-token-x']) {
      expect(await statusOf(fetch(client(port, { token }), APP_B)), token).toBe('UNAUTHENTICATED');
    }
    const admin = client(port, { token: 'node-admin-token' });
    expect((await fetch(admin, APP_B)).equals(b.data as Buffer)).toBe(true);
    expect(await statusOf(fetch(client(port), APP_A))).toBe('UNAUTHENTICATED');
  });

  it('an app the agent does not serve is NOT_FOUND, although the store holds it', async () => {
    const port = await serve({}, { servesApp: (app) => app === APP_A });
    const c = client(port);
    expect((await fetch(c, APP_A)).length).toBe(2100);
    expect(await statusOf(fetch(c, APP_B))).toBe('NOT_FOUND');
    expect(await statusOf(list(c, APP_B))).toBe('NOT_FOUND');
  });

  it('refuses ListMapOutputs naming thousands of shuffles before a single store LIST', async () => {
    const port = await serve({});
    const c = client(port);
    const before = store.lists;
    const many = Array.from({ length: 20_000 }, (_, i) => i);
    const started = Date.now();
    const err = await list(c, APP_B, many).catch((e: unknown) => e as ServiceError);
    expect(await statusOf(Promise.reject(err))).toBe('INVALID_ARGUMENT');
    expect((err as ServiceError).details).toMatch(/at most \d+ distinct shuffle_ids/);
    expect(store.lists - before).toBe(0);
    expect(Date.now() - started).toBeLessThan(2000);
    // Up to the cap, and duplicates count once.
    expect(await list(c, APP_B, [...Array.from({ length: 256 }, (_, i) => i), 0, 0, 1])).toBe(1);
  });

  it('one tenant cannot take every stream: per-app tokens hold half the status streams, one app half the fetch streams', async () => {
    const big = await writeBigOutput(join(dir.path, 'local-big'), APP_A, 5, '0', 32 * 1024 * 1024, 1024 * 1024);
    const bigLookup = new MapLookup().add(big.output).add(a.output);
    const s = await startGrpcServer({ lookup: bigLookup, store, lifecycle: new FakeLifecycle() }, { host: '127.0.0.1', port: 0, appKeys: [KEY], token: 'node-admin-token', maxStreams: 4, chunkSize: 64 * 1024 });
    servers.push(s);
    const asA = client(s.port, { token: appToken(KEY, APP_A, LATER) });
    const admin = client(s.port, { token: 'node-admin-token' });
    const held: Array<{ cancel(): void }> = [];
    try {
      // 32 WatchStatus streams with a per-app token, each past its first message (admitted).
      for (let i = 0; i < 32; i++) {
        const w = asA.watchStatus();
        w.on('error', () => undefined);
        held.push(w);
        await once(w, 'data');
      }
      const refused = asA.watchStatus();
      const [err] = (await once(refused, 'error')) as [ServiceError];
      expect(await statusOf(Promise.reject(err))).toBe('RESOURCE_EXHAUSTED');
      const mine = admin.watchStatus();
      mine.on('error', () => undefined);
      held.push(mine);
      await once(mine, 'data');

      // Two fetches of app A that stop reading (flow control keeps them open) fill app A's half.
      for (let i = 0; i < 2; i++) {
        const f = admin.fetchShuffleBlock({ app_id: APP_A, shuffle_id: 5, map_id: 0, start_reduce_id: 0, end_reduce_id: 32 });
        f.on('error', () => undefined);
        held.push(f);
        await once(f, 'data');
        f.pause();
      }
      expect(await statusOf(fetch(admin, APP_A))).toBe('RESOURCE_EXHAUSTED');
      expect((await fetch(admin, APP_B)).equals(b.data as Buffer)).toBe(true);
    } finally {
      for (const h of held) h.cancel();
    }
  });

  it('echoes at most a short piece of client input in grpc-message', async () => {
    const port = await serve({});
    const longApp = 'x'.repeat(10_000);
    const err = await fetch(client(port), longApp).catch((e: unknown) => e as ServiceError);
    expect(await statusOf(Promise.reject(err))).toBe('INVALID_ARGUMENT');
    expect((err as ServiceError).details.length).toBeLessThan(200);
    expect((err as ServiceError).details).toContain('10000 chars');
    // On the wire, with a raw HTTP/2 client: the header itself is small.
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        const req = session.request({ ':method': 'POST', ':path': `/spark.shuffleagent.v1.ShuffleAgent/${'M'.repeat(8000)}`, 'content-type': 'application/grpc', te: 'trailers' });
        req.on('response', (h) => resolve(h));
        req.on('error', reject);
        req.end(frameMessage(Buffer.alloc(0)));
      });
      expect(trailers['grpc-status']).toBe('12');
      expect(String(trailers['grpc-message']).length).toBeLessThan(300);
    } finally {
      session.close();
    }
  });
});
