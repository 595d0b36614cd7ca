/**
 * bench:writeback-memory — the heap the write-back queue keeps per stored output of an executor
 * that went away, and after `--forget-gone-outputs-after` (forgetGone with a clock moved on). A
 * node agent sees every output of every executor scheduled on its node: what it keeps of those
 * whose executor has gone bounds its memory over weeks.
 *
 *   npm run bench:writeback-memory [-- --outputs 20000 --partitions 200,2000]
 *
 * In one process (`node --expose-gc`), with a store that takes every file at once: N outputs (one real index and data
 * file shared by all, each output its own offsets array as the watcher parses it) are added and
 * persisted, then their executor's directory is reported gone. Heap after full collections.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeIndex } from '../../agent/spark/index-file.js';
import type { MapOutput } from '../../agent/watch/map-output.js';
import { WritebackQueue } from '../../agent/writeback/writeback-queue.js';
import type { WritebackStore } from '../../agent/writeback/writeback-queue.js';
import { flag } from './args.js';

const exposedGc = globalThis.gc;
if (!exposedGc) throw new Error('needs node --expose-gc (npm run bench:writeback-memory passes it)');
const gc: () => void = exposedGc;
const outputs = Number(flag('outputs', '20000'));
const partitionCounts = flag('partitions', '200,2000').split(',').map(Number);

/** Heap used after full collections, once the tasks in flight have settled (the queue closes
 * the outputs' descriptors after they are stored, without a promise to await). */
async function heapUsed(): Promise<number> {
  await new Promise((r) => setTimeout(r, 200));
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

async function measure(partitions: number): Promise<{ kept: number; forgotten: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'wb-memory-'));
  try {
    const offsets = Array.from({ length: partitions + 1 }, (_, k) => k * 10);
    await writeFile(join(dir, 'index'), encodeIndex(offsets));
    await writeFile(join(dir, 'data'), Buffer.alloc(partitions * 10));
    let clock = 0;
    const store: WritebackStore = { put: async (key, file) => ({ key, size: file.size }), holds: async () => false };
    const q = new WritebackQueue({ store, now: () => clock, forgetGoneAfterMs: 60_000, concurrency: 64 });
    const before = await heapUsed();
    for (let i = 0; i < outputs; i++) {
      const output: MapOutput = {
        id: `app/0/${i}`, appId: 'app', shuffleId: 0, mapId: String(i), blockManagerDir: dir,
        indexPath: join(dir, 'index'), indexLength: (partitions + 1) * 8, dataPath: join(dir, 'data'), dataLength: partitions * 10,
        offsets: offsets.slice(), committedAt: 0, foundAtStart: false,
      };
      q.add(output);
      if (i % 1000 === 999) await q.whenIdle();
    }
    await q.whenIdle();
    for (const view of q.list('app')) q.removed({ output: view.output, blockManagerDirGone: true });
    const kept = await heapUsed();
    clock = 61_000;
    q.forgetGone();
    const forgotten = await heapUsed();
    await q.close();
    return { kept: (kept - before) / outputs, forgotten: (forgotten - before) / outputs };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

for (const partitions of partitionCounts) {
  const m = await measure(partitions);
  console.log(`${outputs} outputs of ${partitions} partitions: ${(m.kept / 1024).toFixed(2)} KiB kept per output whose executor went away; ${(m.forgotten / 1024).toFixed(2)} KiB once forgotten`);
}
