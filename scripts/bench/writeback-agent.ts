/**
 * The agent's side of bench:writeback, run as its own process so that its CPU time and peak RSS
 * can be measured: finds every committed map output under a local dir (as the watcher's start
 * scan would) and writes them all through WritebackQueue + S3Store. Settings come from the
 * BENCH_AGENT env var (JSON); prints one JSON line with what it sent.
 */
import { S3Store } from '../../agent/store/s3/s3-store.js';
import { WritebackQueue } from '../../agent/writeback/writeback-queue.js';
import { LocalDirWatcher } from '../../agent/watch/local-dir-watcher.js';
import type { MapOutput } from '../../agent/watch/map-output.js';

interface AgentSpec {
  dir: string;
  appId: string;
  endpoint: string;
  bucket: string;
  prefix: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  concurrency: number;
  /** The store's defaults when unset. */
  maxConcurrentRequests?: number;
  multipartThreshold?: number;
}

/** The outputs under `root`, found by the agent's own watcher (its start scan). */
async function findOutputs(root: string, appId: string): Promise<MapOutput[]> {
  const watcher = new LocalDirWatcher({ localDirs: [root], defaultAppId: appId, rescanIntervalMs: 0 });
  await watcher.start();
  // Written as if just committed: no "already stored?" check against the fresh bucket.
  const outputs = watcher.outputs().map((o) => ({ ...o, foundAtStart: false }));
  await watcher.close();
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
  ...(spec.maxConcurrentRequests ? { maxConcurrentRequests: spec.maxConcurrentRequests } : {}),
  ...(spec.multipartThreshold ? { multipartThreshold: spec.multipartThreshold } : {}),
});
const queue = new WritebackQueue({ store, concurrency: spec.concurrency });
const started = performance.now();
const cpu0 = process.cpuUsage();
for (const o of outputs) queue.add(o);
await queue.whenIdle();
const seconds = (performance.now() - started) / 1000;
const cpu = process.cpuUsage(cpu0);
const status = queue.status();
await queue.close();
await store.close();
process.stdout.write(`${JSON.stringify({ outputs: outputs.length, bytes: status.persistedBytes, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, failedFiles: status.failedFiles })}\n`);
