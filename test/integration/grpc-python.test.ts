/**
 * Interop: Debian's Python grpcio (python3-grpcio, python3-grpc-tools, /usr/bin/python3) with stubs
 * generated from proto/ at test time fetches partitions from the Node server; bytes compared here.
 * Without python grpc the test fails under CI=true (it must not pass by skipping), and elsewhere
 * reports the missing packages as a failure too: there is no silent skip.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGrpcServer, type RunningGrpcServer } from '../../agent/serve/server.js';
import { FileStore } from '../../agent/store/file-store.js';
import { FakeLifecycle, MapLookup, storeOutput, tempDir, writeOutput, type WrittenOutput } from '../support/grpc-fixtures.js';

const run = promisify(execFile);
const PYTHON = '/usr/bin/python3';
const CLIENT = fileURLToPath(new URL('../support/python_grpc_client.py', import.meta.url));
const APP = 'spark-py';

async function python(...args: string[]): Promise<unknown> {
  const { stdout } = await run(PYTHON, [CLIENT, ...args], { maxBuffer: 1 << 20 });
  return JSON.parse(stdout.trim().split('\n').at(-1) as string);
}

describe('gRPC interop with Python grpcio', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let server: RunningGrpcServer;
  let tokenServer: RunningGrpcServer;
  let local: WrittenOutput;
  let stored: WrittenOutput;

  beforeAll(async () => {
    const probe = await run(PYTHON, ['-c', 'import grpc, grpc_tools.protoc']).then(
      () => undefined,
      (err: Error) => err,
    );
    if (probe) {
      throw new Error(`Python grpc is missing (apt-get install -y python3-grpcio python3-grpc-tools)${process.env.CI === 'true' ? ' in CI' : ''}: ${probe.message}`);
    }
    dir = await tempDir('grpc-py-');
    const store = new FileStore(join(dir.path, 'store'));
    // Ids 0, empty partitions, and a partition spanning several chunks.
    local = await writeOutput(join(dir.path, 'local'), APP, 0, '0', [0, 11, 3_000_000, 0, 65_536, 1]);
    stored = await writeOutput(join(dir.path, 'gone'), APP, 3, '9007199254740993', [700, 0, 1_500_000]);
    await storeOutput(store, stored.output);
    server = await startGrpcServer({ lookup: new MapLookup().add(local.output), store, lifecycle: new FakeLifecycle() }, { host: '127.0.0.1', port: 0 });
    tokenServer = await startGrpcServer({ lookup: new MapLookup().add(local.output), store }, { host: '127.0.0.1', port: 0, token: 'py-token' });
  });

  afterAll(async () => {
    await server?.close(500);
    await tokenServer?.close(500);
    await dir?.remove();
  });

  it('fetches every partition of a local output (ids 0) and of a store-only output, byte for byte', async () => {
    for (const [o, shuffle, map] of [
      [local, '0', '0'],
      [stored, '3', '9007199254740993'],
    ] as const) {
      const outDir = await tempDir('grpc-py-parts-');
      try {
        const result = (await python('parts', `127.0.0.1:${server.port}`, APP, shuffle, map, outDir.path)) as { partitions: number; location: string };
        expect(result.partitions).toBe(o.output.offsets.length - 1);
        expect(result.location).toBe(o === local ? 'OUTPUT_LOCATION_LOCAL' : 'OUTPUT_LOCATION_STORED');
        for (let r = 0; r < result.partitions; r++) {
          const got = await readFile(join(outDir.path, `${r}.bin`));
          expect(got.equals((o.data as Buffer).subarray(o.output.offsets[r], o.output.offsets[r + 1])), `${shuffle}/${map} partition ${r}`).toBe(true);
        }
      } finally {
        await outDir.remove();
      }
    }
  });

  it('fetches a multi-partition range with a token and gets the gRPC status codes of bad requests', async () => {
    const out = join(dir.path, 'range.bin');
    const r = (await python('fetch', `127.0.0.1:${tokenServer.port}`, APP, '0', '0', '1', '5', out, 'py-token')) as { bytes: number; chunks: number };
    const expected = (local.data as Buffer).subarray(local.output.offsets[1], local.output.offsets[5]);
    expect(r).toEqual({ bytes: expected.length, chunks: Math.ceil(expected.length / (1024 * 1024)) });
    expect((await readFile(out)).equals(expected)).toBe(true);
    expect(await python('errors', `127.0.0.1:${server.port}`, APP)).toEqual({ bad_app: 'INVALID_ARGUMENT', negative_map: 'INVALID_ARGUMENT', unknown_map: 'NOT_FOUND', no_token: 'OK' });
    expect(((await python('errors', `127.0.0.1:${tokenServer.port}`, APP)) as Record<string, string>).no_token).toBe('UNAUTHENTICATED');
  });
});
