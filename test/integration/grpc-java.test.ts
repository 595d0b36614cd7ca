/**
 * Interop: grpc-java (Debian's libgrpc-java over Netty, stubs generated from proto/ at test time,
 * see test/kit/java-client.ts) fetches partitions from the Node server; bytes compared here.
 * Spark executors are JVMs, so this is the client that matters. Without the Java toolchain the test
 * fails (it must not pass by skipping) with the apt packages to install.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '../support/grpc-fixtures.js';
import { differingPartitions, interopFixture, type InteropFixture } from '../support/interop-fixture.js';
import { javaClient, javaClientCommand } from '../kit/java-client.js';

const APP = 'spark-java';
/** Each call starts a JVM (about 1 s; more on a busy machine). */
const JVM_TIMEOUT = 30_000;

describe('gRPC interop with grpc-java', () => {
  let f: InteropFixture;

  beforeAll(async () => {
    // Compiles the client (protoc + javac, a few seconds) unless a previous run left it cached.
    await javaClientCommand();
    f = await interopFixture(APP, 'java-token');
  });

  afterAll(async () => {
    await f?.close();
  });

  it(
    'fetches every partition of a local output (ids 0) and of a store-only output, byte for byte',
    async () => {
      for (const [o, shuffle, map] of f.cases) {
        const outDir = await tempDir('grpc-java-parts-');
        try {
          const result = (await javaClient('parts', `127.0.0.1:${f.server.port}`, APP, shuffle, map, outDir.path)) as { partitions: number; location: string; map_id: string };
          expect(result).toEqual({
            partitions: o.output.offsets.length - 1,
            location: o === f.local ? 'OUTPUT_LOCATION_LOCAL' : 'OUTPUT_LOCATION_STORED',
            map_id: map,
          });
          expect(await differingPartitions(o, outDir.path, result.partitions), `${shuffle}/${map}`).toEqual([]);
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
      const out = join(f.dir, 'range.bin');
      const r = await javaClient('fetch', `127.0.0.1:${f.tokenServer.port}`, APP, '0', '0', '1', '5', out, 'java-token');
      const expected = (f.local.data as Buffer).subarray(f.local.output.offsets[1], f.local.output.offsets[5]);
      expect(r).toEqual({ bytes: expected.length, chunks: Math.ceil(expected.length / (1024 * 1024)), source: 'BLOCK_SOURCE_LOCAL' });
      expect((await readFile(out)).equals(expected)).toBe(true);
      expect(await javaClient('errors', `127.0.0.1:${f.server.port}`, APP)).toEqual({
        bad_app: 'INVALID_ARGUMENT',
        negative_map: 'INVALID_ARGUMENT',
        unknown_map: 'NOT_FOUND',
        no_token: 'OK',
      });
      expect(((await javaClient('errors', `127.0.0.1:${f.tokenServer.port}`, APP)) as Record<string, string>).no_token).toBe('UNAUTHENTICATED');
    },
    JVM_TIMEOUT,
  );

  it(
    'runs the bench modes briefly (the numbers are not judged here, only that they add up)',
    async () => {
      const target = `127.0.0.1:${f.server.port}`;
      const parts = (await javaClient('bench', target, APP, '0', '0', '6', '4', '0.3', '0.2')) as { fetches: number; bytes: number; seconds: number; fetches_per_s: number };
      expect(parts.fetches).toBeGreaterThan(0);
      expect(parts.seconds).toBe(0.3);
      expect(parts.fetches_per_s).toBeCloseTo(parts.fetches / 0.3, 6);
      expect(parts.bytes).toBeLessThanOrEqual(parts.fetches * 3_000_000);
      const whole = (await javaClient('bench-whole', target, APP, '0', '0', '0', '6', '2')) as { bytes: number; mib_per_s: number };
      expect(whole.bytes).toBe(2 * f.local.output.dataLength);
      expect(whole.mib_per_s).toBeGreaterThan(0);
    },
    JVM_TIMEOUT,
  );
});
