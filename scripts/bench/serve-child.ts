/**
 * The agent's gRPC block service alone, in its own process, so that `bench:serve` can measure its
 * CPU and RSS apart from the clients'. Serves one output described by the files in --dir.
 * Prints `{"port": N}` on stdout once listening; stops on SIGTERM.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { startGrpcServer } from '../../agent/serve/server.js';
import { FileStore } from '../../agent/store/file-store.js';
import { parseIndex } from '../../agent/spark/index-file.js';
import { shuffleFileName } from '../../agent/spark/file-names.js';
import { mapOutputId, type MapOutput } from '../../agent/watch/map-output.js';
import type { OutputView } from '../../agent/writeback/writeback-queue.js';

async function main(): Promise<void> {
  const args = new Map<string, string>();
  for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i] as string, process.argv[i + 1] as string);
  const dir = args.get('--dir') as string;
  const appId = args.get('--app') ?? 'spark-bench';
  const indexPath = join(dir, shuffleFileName(0, '0', 'index'));
  const dataPath = join(dir, shuffleFileName(0, '0', 'data'));
  const offsets = parseIndex(await readFile(indexPath));
  const output: MapOutput = {
    id: mapOutputId(appId, 0, '0'),
    appId,
    shuffleId: 0,
    mapId: '0',
    blockManagerDir: dir,
    indexPath,
    indexLength: (await stat(indexPath)).size,
    dataPath,
    dataLength: (await stat(dataPath)).size,
    offsets,
    committedAt: Date.now(),
    foundAtStart: true,
  };
  const view: OutputView = { output, phase: 'queued', local: true };
  const lookup = { get: (id: string) => (id === output.id ? view : undefined), list: () => [view] };
  const server = await startGrpcServer({ lookup, store: new FileStore(join(dir, 'store')) }, {
    host: '127.0.0.1',
    port: 0,
    maxStreams: 1024,
    ...(args.get('--max-buffered') ? { maxBufferedBytes: Number(args.get('--max-buffered')) } : {}),
  });
  process.stdout.write(`${JSON.stringify({ port: server.port })}\n`);
  process.once('SIGTERM', () => void server.close(1000).then(() => process.exit(0)));
}

void main().catch((err: unknown) => {
  process.stderr.write(`${String(err)}\n`);
  process.exit(1);
});
