/**
 * Interop: grpc-java (Debian's libgrpc-java over Netty, stubs generated from proto/ at test time,
 * see test/support/java-client.ts) fetches partitions from the Node server; bytes compared here.
 * Spark executors are JVMs, so this is the client that matters. Without the Java toolchain the test
 * fails (it must not pass by skipping) with the apt packages to install.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGrpcServer, type RunningGrpcServer } from '../../agent/serve/server.js';
import { FileStore } from '../../agent/store/file-store.js';
import { FakeLifecycle, MapLookup, storeOutput, tempDir, writeOutput, type WrittenOutput } from '../support/grpc-fixtures.js';
import { javaClient, javaClientCommand } from '../support/java-client.js';

const APP = 'spark-java';
/** Each call starts a JVM (about 1 s; more on a busy machine). */
const JVM_TIMEOUT = 30_000;

describe('gRPC interop with grpc-java', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let server: RunningGrpcServer;
  let tokenServer: RunningGrpcServer;
  let local: WrittenOutput;
  let stored: WrittenOutput;

  beforeAll(async () => {
    // Compiles the client (protoc + javac, a few seconds) unless a previous run left it cached.
    await javaClientCommand();
    dir = await tempDir('grpc-java-');
    const store = new FileStore(join(dir.path, 'store'));
    // Ids 0, empty partitions, and a partition spanning several chunks.
    local = await writeOutput(join(dir.path, 'local'), APP, 0, '0', [0, 11, 3_000_000, 0, 65_536, 1]);
    // A map id above 2^53: a Java long, never a double.
    stored = await writeOutput(join(dir.path, 'gone'), APP, 3, '9007199254740993', [700, 0, 1_500_000]);
    await storeOutput(store, stored.output);
    server = await startGrpcServer({ lookup: new MapLookup().add(local.output), store, lifecycle: new FakeLifecycle() }, { host: '127.0.0.1', port: 0 });
    tokenServer = await startGrpcServer({ lookup: new MapLookup().add(local.output), store }, { host: '127.0.0.1', port: 0, token: 'java-token' });
  });

  afterAll(async () => {
    await server?.close(500);
    await tokenServer?.close(500);
    await dir?.remove();
  });

  it(
    'fetches every partition of a local output (ids 0) and of a store-only output, byte for byte',
    async () => {
      for (const [o, shuffle, map] of [
        [local, '0', '0'],
        [stored, '3', '9007199254740993'],
      ] as const) {
        const outDir = await tempDir('grpc-java-parts-');
        try {
          const result = (await javaClient('parts', `127.0.0.1:${server.port}`, APP, shuffle, map, outDir.path)) as { partitions: number; location: string; map_id: string };
          expect(result).toEqual({
            partitions: o.output.offsets.length - 1,
            location: o === local ? 'OUTPUT_LOCATION_LOCAL' : 'OUTPUT_LOCATION_STORED',
            map_id: map,
          });
          for (let r = 0; r < result.partitions; r++) {
            const got = await readFile(join(outDir.path, `${r}.bin`));
            expect(got.equals((o.data as Buffer).subarray(o.output.offsets[r], o.output.offsets[r + 1])), `${shuffle}/${map} partition ${r}`).toBe(true);
          }
        } finally {
          await outDir.remove();
        }
      }
    },
    JVM_TIMEOUT,
  );

  it(
    'fetches a multi-chunk range with a token and gets the gRPC status codes of bad requests',
    async () => {
      const out = join(dir.path, 'range.bin');
      const r = await javaClient('fetch', `127.0.0.1:${tokenServer.port}`, APP, '0', '0', '1', '5', out, 'java-token');
      const expected = (local.data as Buffer).subarray(local.output.offsets[1], local.output.offsets[5]);
      expect(r).toEqual({ bytes: expected.length, chunks: Math.ceil(expected.length / (1024 * 1024)), source: 'BLOCK_SOURCE_LOCAL' });
      expect((await readFile(out)).equals(expected)).toBe(true);
      expect(await javaClient('errors', `127.0.0.1:${server.port}`, APP)).toEqual({
        bad_app: 'INVALID_ARGUMENT',
        negative_map: 'INVALID_ARGUMENT',
        unknown_map: 'NOT_FOUND',
        no_token: 'OK',
      });
      expect(((await javaClient('errors', `127.0.0.1:${tokenServer.port}`, APP)) as Record<string, string>).no_token).toBe('UNAUTHENTICATED');
    },
    JVM_TIMEOUT,
  );

  it(
    'runs the bench modes briefly (the numbers are not judged here, only that they add up)',
    async () => {
      const target = `127.0.0.1:${server.port}`;
      const parts = (await javaClient('bench', target, APP, '0', '0', '6', '4', '0.3', '0.2')) as { fetches: number; bytes: number; seconds: number; fetches_per_s: number };
      expect(parts.fetches).toBeGreaterThan(0);
      expect(parts.seconds).toBe(0.3);
      expect(parts.fetches_per_s).toBeCloseTo(parts.fetches / 0.3, 6);
      expect(parts.bytes).toBeLessThanOrEqual(parts.fetches * 3_000_000);
      const whole = (await javaClient('bench-whole', target, APP, '0', '0', '0', '6', '2')) as { bytes: number; mib_per_s: number };
      expect(whole.bytes).toBe(2 * local.output.dataLength);
      expect(whole.mib_per_s).toBeGreaterThan(0);
    },
    JVM_TIMEOUT,
  );
});
