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
import { tempDir } from '../support/grpc-fixtures.js';
import { differingPartitions, interopFixture, type InteropFixture } from '../support/interop-fixture.js';

const run = promisify(execFile);
const PYTHON = '/usr/bin/python3';
const CLIENT = fileURLToPath(new URL('../kit/python_grpc_client.py', import.meta.url));
const APP = 'spark-py';

async function python(...args: string[]): Promise<unknown> {
  const { stdout } = await run(PYTHON, [CLIENT, ...args], { maxBuffer: 1 << 20 });
  return JSON.parse(stdout.trim().split('\n').at(-1) as string);
}

describe('gRPC interop with Python grpcio', () => {
  let f: InteropFixture;

  beforeAll(async () => {
    const probe = await run(PYTHON, ['-c', 'import grpc, grpc_tools.protoc']).then(
      () => undefined,
      (err: Error) => err,
    );
    if (probe) {
      throw new Error(`Python grpc is missing (apt-get install -y python3-grpcio python3-grpc-tools)${process.env.CI === 'true' ? ' in CI' : ''}: ${probe.message}`);
    }
    f = await interopFixture(APP, 'py-token');
  });

  afterAll(async () => {
    await f?.close();
  });

  it('fetches every partition of a local output (ids 0) and of a store-only output, byte for byte', async () => {
    for (const [o, shuffle, map] of f.cases) {
      const outDir = await tempDir('grpc-py-parts-');
      try {
        const result = (await python('parts', `127.0.0.1:${f.server.port}`, APP, shuffle, map, outDir.path)) as { partitions: number; location: string };
        expect(result.partitions).toBe(o.output.offsets.length - 1);
        expect(result.location).toBe(o === f.local ? 'OUTPUT_LOCATION_LOCAL' : 'OUTPUT_LOCATION_STORED');
        expect(await differingPartitions(o, outDir.path, result.partitions), `${shuffle}/${map}`).toEqual([]);
      } finally {
        await outDir.remove();
      }
    }
  });

  it('fetches a multi-partition range with a token and gets the gRPC status codes of bad requests', async () => {
    const out = join(f.dir, 'range.bin');
    const r = (await python('fetch', `127.0.0.1:${f.tokenServer.port}`, APP, '0', '0', '1', '5', out, 'py-token')) as { bytes: number; chunks: number };
    const expected = (f.local.data as Buffer).subarray(f.local.output.offsets[1], f.local.output.offsets[5]);
    expect(r).toEqual({ bytes: expected.length, chunks: Math.ceil(expected.length / (1024 * 1024)) });
    expect((await readFile(out)).equals(expected)).toBe(true);
    expect(await python('errors', `127.0.0.1:${f.server.port}`, APP)).toEqual({ bad_app: 'INVALID_ARGUMENT', long_app: 'INVALID_ARGUMENT', negative_map: 'INVALID_ARGUMENT', unknown_map: 'NOT_FOUND', no_token: 'OK' });
    expect(((await python('errors', `127.0.0.1:${f.tokenServer.port}`, APP)) as Record<string, string>).no_token).toBe('UNAUTHENTICATED');
  });
});
