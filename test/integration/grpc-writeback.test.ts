/** The block service over the real WritebackQueue: local while pending, store after Spark's dir is gone. */
import { once } from 'node:events';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ShuffleAgentClient } from '../../agent/serve/client.js';
import { startGrpcServer, type RunningGrpcServer } from '../../agent/serve/server.js';
import type { OutputLookup } from '../../agent/serve/types.js';
import { FileStore } from '../../agent/store/file-store.js';
import { WritebackQueue } from '../../agent/writeback/writeback-queue.js';
import { collect } from '../support/grpc-client-helpers.js';
import { tempDir, writeOutput, type WrittenOutput } from '../support/grpc-fixtures.js';

const APP = 'spark-wb';

describe('gRPC block service over the write-back queue', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let queue: WritebackQueue;
  let server: RunningGrpcServer;
  let client: ShuffleAgentClient;

  beforeAll(async () => {
    dir = await tempDir('grpc-wb-');
    queue = new WritebackQueue({ store: new FileStore(join(dir.path, 'store')), layout: 'spark-3.1' });
    // The queue is the lookup as it is: no adapter.
    const lookup: OutputLookup = queue;
    server = await startGrpcServer({ lookup, store: new FileStore(join(dir.path, 'store')), layout: 'spark-3.1' }, { host: '127.0.0.1', port: 0 });
    client = new ShuffleAgentClient({ target: `127.0.0.1:${server.port}` });
  });

  afterAll(async () => {
    client.close();
    await server.close(500);
    await queue.close();
    await dir.remove();
  });

  async function partitions(o: WrittenOutput): Promise<string[]> {
    const sources: string[] = [];
    for (let r = 0; r < o.output.offsets.length - 1; r++) {
      const got = await collect(client.fetchShuffleBlock({ app_id: APP, shuffle_id: o.output.shuffleId, map_id: o.output.mapId, start_reduce_id: r, end_reduce_id: r + 1 }));
      expect(got.data.equals((o.data as Buffer).subarray(o.output.offsets[r], o.output.offsets[r + 1])), `partition ${r}`).toBe(true);
      sources.push(...got.chunks.map((c) => c.source));
    }
    return [...new Set(sources)];
  }

  it('serves locally while pending, then from the store once the executor directory is gone and forgotten', async () => {
    const blockmgr = join(dir.path, 'blockmgr-0001');
    const o = await writeOutput(join(blockmgr, '0c'), APP, 2, '41', [1000, 0, 2_500_000, 17]);
    const persisted = once(queue, 'persisted');
    queue.add(o.output);
    expect(await partitions(o)).toEqual(['BLOCK_SOURCE_LOCAL']);
    await persisted;

    await rm(blockmgr, { recursive: true });
    queue.removed({ output: o.output, blockManagerDirGone: true });
    expect(queue.get(o.output.id)?.local).toBe(false);
    expect(await partitions(o)).toEqual(['BLOCK_SOURCE_STORE']);

    // Spark cleaned the shuffle up: the queue forgets the output, the store still answers.
    queue.removed({ output: o.output, blockManagerDirGone: false });
    expect(queue.get(o.output.id)).toBeUndefined();
    expect(await partitions(o)).toEqual(['BLOCK_SOURCE_STORE']);
    const listed = [];
    for await (const info of client.listMapOutputs(APP)) listed.push(info);
    expect(listed.map((i) => [i.map_id, i.location, i.index_key])).toEqual([['41', 'OUTPUT_LOCATION_STORED', `${APP}/2/shuffle_2_41_0.index`]]);
  });
});
