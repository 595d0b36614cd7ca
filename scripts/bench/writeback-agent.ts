/**
 * The agent's side of bench:writeback, run as its own process so that its CPU time and peak RSS
 * can be measured: finds every committed map output under a local dir (as the watcher's start
 * scan would) and writes them all through WritebackQueue + S3Store. Settings come from the
 * BENCH_AGENT env var (JSON); prints one JSON line with what it sent.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { S3Store } from '../../agent/store/s3-store.js';
import { WritebackQueue } from '../../agent/writeback/writeback-queue.js';
import { parseIndex } from '../../agent/spark/index-file.js';
import { parseSparkFileName } from '../../agent/spark/file-names.js';
import { mapOutputId, type MapOutput } from '../../agent/watch/map-output.js';

interface AgentSpec {
  dir: string;
  appId: string;
  endpoint: string;
  bucket: string;
  prefix: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  concurrency: number;
  maxConcurrentRequests: number;
  multipartThreshold?: number;
}

async function findOutputs(root: string, appId: string): Promise<MapOutput[]> {
  const outputs: MapOutput[] = [];
  for (const bm of await readdir(root)) {
    if (!bm.startsWith('blockmgr-')) continue;
    for (const sub of await readdir(join(root, bm))) {
      for (const name of await readdir(join(root, bm, sub))) {
        const parsed = parseSparkFileName(name);
        if (parsed.kind !== 'shuffle' || parsed.type !== 'index') continue;
        const indexPath = join(root, bm, sub, name);
        const index = await readFile(indexPath);
        const offsets = parseIndex(index);
        const dataName = name.replace(/\.index$/, '.data');
        // DiskBlockManager may place the data file in another sub-directory: look in all of them.
        let dataPath: string | undefined;
        for (const s of await readdir(join(root, bm))) {
          const p = join(root, bm, s, dataName);
          if (await stat(p).then(() => true, () => false)) dataPath = p;
        }
        outputs.push({
          id: mapOutputId(appId, parsed.shuffleId, parsed.mapId),
          appId,
          shuffleId: parsed.shuffleId,
          mapId: parsed.mapId,
          blockManagerDir: join(root, bm),
          indexPath,
          indexLength: index.length,
          ...(dataPath ? { dataPath } : {}),
          dataLength: offsets[offsets.length - 1] as number,
          offsets,
          committedAt: Date.now(),
          foundAtStart: false,
        });
      }
    }
  }
  return outputs;
}

const spec = JSON.parse(process.env.BENCH_AGENT ?? '') as AgentSpec;
const outputs = await findOutputs(spec.dir, spec.appId);
const store = new S3Store({
  bucket: spec.bucket,
  prefix: spec.prefix,
  endpoint: spec.endpoint,
  forcePathStyle: true,
  credentials: spec.credentials,
  checksums: 'when_required',
  maxConcurrentRequests: spec.maxConcurrentRequests,
  ...(spec.multipartThreshold ? { multipartThreshold: spec.multipartThreshold } : {}),
});
const queue = new WritebackQueue({ store, concurrency: spec.concurrency });
const started = performance.now();
for (const o of outputs) queue.add(o);
await queue.whenIdle();
const seconds = (performance.now() - started) / 1000;
const status = queue.status();
await queue.close();
await store.close();
process.stdout.write(`${JSON.stringify({ outputs: outputs.length, bytes: status.persistedBytes, seconds, failedFiles: status.failedFiles })}\n`);
