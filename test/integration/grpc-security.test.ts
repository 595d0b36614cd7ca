/** TLS, mTLS and bearer-token modes of the block service, and the config loader that reads their files. */
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ShuffleAgentClient, type ShuffleAgentClientOptions } from '../../agent/serve/client.js';
import { grpcServerOptions } from '../../agent/serve/config.js';
import { startGrpcServer, type GrpcServerOptions, type RunningGrpcServer } from '../../agent/serve/server.js';
import { FileStore } from '../../agent/store/file-store.js';
import { TokenFile } from '../../agent/serve/token-file.js';
import { ConfigError } from '../../agent/util/errors.js';
import { statusOf } from '../support/grpc-client-helpers.js';
import { makePki, type TestPki } from '../support/grpc-certs.js';
import { FakeLifecycle, MapLookup, RecordingMetrics, tempDir, writeOutput, type WrittenOutput } from '../support/grpc-fixtures.js';

const APP = 'spark-5ec';

describe('gRPC security', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let pki: TestPki;
  let out: WrittenOutput;
  const lookup = new MapLookup();
  const servers: RunningGrpcServer[] = [];
  const clients: ShuffleAgentClient[] = [];

  beforeAll(async () => {
    dir = await tempDir('grpc-sec-');
    pki = await makePki(dir.path);
    out = await writeOutput(join(dir.path, 'local'), APP, 0, '0', [100, 2000]);
    lookup.add(out.output);
  });

  afterAll(async () => {
    for (const c of clients) c.close();
    await Promise.all(servers.map((s) => s.close(500)));
    await dir.remove();
  });

  async function serve(options: Omit<GrpcServerOptions, 'host' | 'port'>, metrics?: RecordingMetrics): Promise<number> {
    const s = await startGrpcServer({ lookup, store: new FileStore(join(dir.path, 'store')), lifecycle: new FakeLifecycle(), ...(metrics ? { metrics } : {}) }, { host: '127.0.0.1', port: 0, ...options });
    servers.push(s);
    return s.port;
  }

  function client(port: number, options: Omit<ShuffleAgentClientOptions, 'target'> = {}): ShuffleAgentClient {
    const c = new ShuffleAgentClient({ target: `127.0.0.1:${port}`, ...options });
    clients.push(c);
    return c;
  }

  const fetch = (c: ShuffleAgentClient): Promise<Buffer> =>
    c.fetchBlock({ app_id: APP, shuffle_id: 0, map_id: 0, start_reduce_id: 1, end_reduce_id: 2 }, { deadline: Date.now() + 5000 });

  it('serves over TLS to a client that trusts the CA, and refuses plaintext and untrusting clients', async () => {
    const port = await serve({ tls: { cert: await pki.read(pki.serverCert), key: await pki.read(pki.serverKey) } });
    const got = await fetch(client(port, { tls: { ca: await pki.read(pki.caCert) } }));
    expect(got.equals((out.data as Buffer).subarray(100))).toBe(true);
    expect(await statusOf(fetch(client(port)))).toBe('UNAVAILABLE');
    // System roots do not know the test CA.
    expect(await statusOf(fetch(client(port, { tls: {} })))).toBe('UNAVAILABLE');
  });

  it('requires a client certificate from the configured CA with mTLS', async () => {
    const port = await serve({ tls: { cert: await pki.read(pki.serverCert), key: await pki.read(pki.serverKey), clientCa: await pki.read(pki.caCert) } });
    const ca = await pki.read(pki.caCert);
    const ok = await fetch(client(port, { tls: { ca, cert: await pki.read(pki.clientCert), key: await pki.read(pki.clientKey) } }));
    expect(ok.length).toBe(2000);
    expect(await statusOf(fetch(client(port, { tls: { ca } })))).toBe('UNAVAILABLE');
    expect(await statusOf(fetch(client(port, { tls: { ca, cert: await pki.read(pki.strangerCert), key: await pki.read(pki.strangerKey) } })))).toBe('UNAVAILABLE');
  });

  it('answers UNAUTHENTICATED without the bearer token, on every RPC', async () => {
    const metrics = new RecordingMetrics();
    const port = await serve({ token: 's3cret-token' }, metrics);
    expect((await fetch(client(port, { token: 's3cret-token' }))).length).toBe(2000);
    expect((await client(port, { token: 's3cret-token' }).getStatus()).state).toBe('AGENT_STATE_SERVING');
    for (const c of [client(port), client(port, { token: 'wrong' }), client(port, { token: 's3cret-token-and-more' }), client(port, { token: '' })]) {
      expect(await statusOf(fetch(c))).toBe('UNAUTHENTICATED');
      expect(await statusOf(c.getStatus())).toBe('UNAUTHENTICATED');
      const listed = (async () => {
        for await (const _ of c.listMapOutputs(APP)) void _;
      })();
      expect(await statusOf(listed)).toBe('UNAUTHENTICATED');
    }
    await metrics.idle();
    expect(metrics.errors.filter((e) => e === 'UNAUTHENTICATED').length).toBe(12);
  });

  it('combines TLS and token', async () => {
    const port = await serve({ token: 'tok', tls: { cert: await pki.read(pki.serverCert), key: await pki.read(pki.serverKey) } });
    const ca = await pki.read(pki.caCert);
    expect((await fetch(client(port, { tls: { ca }, token: 'tok' }))).length).toBe(2000);
    expect(await statusOf(fetch(client(port, { tls: { ca } })))).toBe('UNAUTHENTICATED');
  });

  it('takes a rotated token from the token file without a restart, and keeps the current one when the file breaks', async () => {
    const tokenFile = join(dir.path, 'rotating-token');
    await writeFile(tokenFile, 'first\n');
    const s = await startGrpcServer({ lookup, store: new FileStore(join(dir.path, 'store')) }, { host: '127.0.0.1', port: 0, token: 'first' });
    servers.push(s);
    const watcher = new TokenFile({ path: tokenFile, initial: 'first', onChange: (t) => s.rotateToken(t), intervalMs: 3_600_000 });
    const as = (token: string): Promise<string> => statusOf(fetch(client(s.port, { token })));
    try {
      await writeFile(tokenFile, 'second\n');
      await watcher.check();
      expect(await as('second')).toBe('OK');
      // Executors that have not re-read the Secret yet still get through for a while.
      expect(await as('first')).toBe('OK');
      expect(await as('third')).toBe('UNAUTHENTICATED');
      // An empty or missing file is a broken rotation, not "no token": the current token stays.
      await writeFile(tokenFile, '\n');
      await watcher.check();
      await rm(tokenFile);
      await watcher.check();
      expect(await as('second')).toBe('OK');
      expect(await statusOf(fetch(client(s.port)))).toBe('UNAUTHENTICATED');
    } finally {
      watcher.close();
    }
    // A server started without a token cannot be switched to one.
    const open = await startGrpcServer({ lookup, store: new FileStore(join(dir.path, 'store')) }, { host: '127.0.0.1', port: 0 });
    servers.push(open);
    expect(() => open.rotateToken('x')).toThrow(/without a token/);
  });

  it('loads cert, key, CA and token files from the run options, and names the setting that is wrong', async () => {
    const tokenFile = join(dir.path, 'token');
    await writeFile(tokenFile, 'from-file\n');
    const base = { grpcListen: { host: '127.0.0.1', port: 0 }, grpcMaxStreams: 8, grpcChunkSize: 65536 };
    const options = await grpcServerOptions({ ...base, grpcTlsCert: pki.serverCert, grpcTlsKey: pki.serverKey, grpcTlsClientCa: pki.caCert, grpcTokenFile: tokenFile });
    expect(options.token).toBe('from-file');
    expect(options.tls?.clientCa?.toString()).toContain('BEGIN CERTIFICATE');
    expect(options.maxStreams).toBe(8);
    await expect(grpcServerOptions({ ...base, grpcTlsCert: pki.serverCert })).rejects.toThrow(ConfigError);
    await expect(grpcServerOptions({ ...base, grpcTlsClientCa: pki.caCert })).rejects.toMatchObject({ key: 'grpcTlsClientCa' });
    await expect(grpcServerOptions({ ...base, grpcTokenFile: join(dir.path, 'missing') })).rejects.toMatchObject({ key: 'grpcTokenFile' });
    await writeFile(tokenFile, '  \n');
    await expect(grpcServerOptions({ ...base, grpcTokenFile: tokenFile })).rejects.toMatchObject({ key: 'grpcTokenFile' });
  });
});
