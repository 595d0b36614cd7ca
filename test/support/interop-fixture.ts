/**
 * What the non-Node interop tests (Python grpcio, grpc-java) serve and check: a local output with
 * ids 0, empty partitions and a partition spanning several chunks, a store-only output whose map
 * id is above 2^53, a server with the lifecycle and one that requires a token.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startGrpcServer, type RunningGrpcServer } from '../../agent/serve/server.js';
import { FileStore } from '../../agent/store/file-store.js';
import { FakeLifecycle, MapLookup, storeOutput, tempDir, writeOutput, type WrittenOutput } from './grpc-fixtures.js';

export interface InteropFixture {
  dir: string;
  server: RunningGrpcServer;
  /** Requires `authorization: Bearer <token>`. */
  tokenServer: RunningGrpcServer;
  local: WrittenOutput;
  stored: WrittenOutput;
  /** [output, shuffle id, map id] of both outputs, as a client names them on its command line. */
  cases: ReadonlyArray<readonly [WrittenOutput, string, string]>;
  close(): Promise<void>;
}

export async function interopFixture(app: string, token: string): Promise<InteropFixture> {
  const dir = await tempDir('grpc-interop-');
  const store = new FileStore(join(dir.path, 'store'));
  const local = await writeOutput(join(dir.path, 'local'), app, 0, '0', [0, 11, 3_000_000, 0, 65_536, 1]);
  const stored = await writeOutput(join(dir.path, 'gone'), app, 3, '9007199254740993', [700, 0, 1_500_000]);
  await storeOutput(store, stored.output);
  const server = await startGrpcServer({ lookup: new MapLookup().add(local.output), store, lifecycle: new FakeLifecycle() }, { host: '127.0.0.1', port: 0 });
  const tokenServer = await startGrpcServer({ lookup: new MapLookup().add(local.output), store }, { host: '127.0.0.1', port: 0, token });
  return {
    dir: dir.path,
    server,
    tokenServer,
    local,
    stored,
    cases: [
      [local, '0', '0'],
      [stored, '3', '9007199254740993'],
    ],
    async close() {
      await server.close(500);
      await tokenServer.close(500);
      await dir.remove();
    },
  };
}

/** The partitions a client wrote as `<dir>/<r>.bin` that differ from the output's bytes (empty: all equal). */
export async function differingPartitions(o: WrittenOutput, dir: string, partitions: number): Promise<number[]> {
  const bad: number[] = [];
  for (let r = 0; r < partitions; r++) {
    const got = await readFile(join(dir, `${r}.bin`));
    if (!got.equals((o.data as Buffer).subarray(o.output.offsets[r], o.output.offsets[r + 1]))) bad.push(r);
  }
  return bad;
}
