/**
 * A write-back process for crash tests: one WritebackQueue on one S3Store, writing the map output
 * described in the CHILD_SPEC env var (JSON). Prints one line per event the parent waits for:
 * `request <op> <outcome>`, then `done <json>` with what it sent and skipped, and exits 0.
 */
import { S3Store, type S3StoreMetrics } from '../../agent/store/s3/s3-store.js';
import { WritebackQueue, type WritebackMetrics } from '../../agent/writeback/writeback-queue.js';
import type { MapOutput } from '../../agent/watch/map-output.js';

interface ChildSpec {
  endpoint: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  bucket: string;
  prefix: string;
  partSize: number;
  bandwidth: number;
  output: MapOutput;
}

const spec = JSON.parse(process.env.CHILD_SPEC ?? '') as ChildSpec;
let uploaded = 0;
let skipped = 0;
const s3Metrics: S3StoreMetrics = {
  request: (op, outcome) => process.stdout.write(`request ${op} ${outcome}\n`),
  retry: () => undefined,
  bytesUploaded: (n) => (uploaded += n),
};
const queueMetrics: WritebackMetrics = {
  filePersisted: () => undefined,
  outputPersisted: () => undefined,
  writeError: (kind) => process.stdout.write(`error ${kind}\n`),
  dropped: () => undefined,
  skippedAlreadyStored: (files) => (skipped += files),
};
const store = new S3Store({
  bucket: spec.bucket,
  prefix: spec.prefix,
  endpoint: spec.endpoint,
  forcePathStyle: true,
  credentials: spec.credentials,
  checksums: 'when_required',
  multipartThreshold: spec.partSize,
  partSize: spec.partSize,
  partConcurrency: 2,
  maxUploadBandwidth: spec.bandwidth,
  metrics: s3Metrics,
});
const queue = new WritebackQueue({ store, metrics: queueMetrics, retry: { baseMs: 50, maxMs: 500 } });
queue.add(spec.output);
await queue.whenIdle();
await queue.close();
await store.close();
process.stdout.write(`done ${JSON.stringify({ uploaded, skipped })}\n`);
