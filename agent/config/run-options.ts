/** The settings of `shuffle-agent run`. Add new ones here; the README reference is generated from this table. */
import { FALLBACK_LAYOUTS } from '../spark/fallback-key.js';
import { isSafeAppId } from '../spark/fallback-key.js';
import { NAMESPACE, parseLayout } from '../watch/layout.js';
import { S3_CHECKSUM_MODES } from '../store/s3/s3-checksums.js';
import { WRITE_ORDERS } from '../writeback/writeback-queue.js';
import { option, parsers, type ValuesOf } from './option-table.js';
import { TERMINATION_SOURCES, type TerminationSourceName } from '../lifecycle/notice.js';

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

export const RUN_OPTIONS = {
  localDirs: option({
    group: 'watch',
    flag: 'local-dirs',
    metavar: 'DIRS',
    default: './var/spark-local',
    doc: "Comma-separated local roots where executors create `blockmgr-*` (the mount path of `spark-local-dir-N`).",
    parse: (raw) => {
      const dirs = parsers.list(raw);
      if (dirs.length === 0) throw new Error('needs at least one directory');
      return dirs;
    },
  }),
  localDirsLayout: option({
    group: 'watch',
    flag: 'local-dirs-layout',
    metavar: 'LAYOUT',
    default: '',
    doc: 'Directories between a root and `blockmgr-*`: empty for one executor per root, `{namespace}/{appId}/{executorId}` for the DaemonSet mode (the namespace is the tenant that owns the app id; `{appId}/{executorId}` still works, with every app in one tenant), `spark-*/executor-*` for Spark standalone and local-cluster workers (`*` matches any part of a name).',
    parse: (raw) => parseLayout(raw).template,
  }),
  appId: option({
    group: 'watch',
    flag: 'app-id',
    metavar: 'ID',
    doc: 'Spark application id of the outputs (store keys). Default: env `SPARK_APPLICATION_ID`, else `local-app`. Ignored for paths whose layout names the app.',
    parse: (raw) => {
      if (!isSafeAppId(raw)) throw new Error(`${JSON.stringify(raw)} is not a usable app id (letters, digits, . _ -)`);
      return raw;
    },
  }),
  podNamespace: option({
    group: 'watch',
    flag: 'pod-namespace',
    doc: 'The tenant (Kubernetes namespace) of the outputs when `--local-dirs-layout` has no `{namespace}` (sidecar modes: the pod\'s own, from the downward API). It owns the app id in the store: an agent of another namespace never writes over it. Default: empty (one tenant).',
    parse: (raw) => {
      if (!NAMESPACE.test(raw)) throw new Error(`${JSON.stringify(raw)} is not a Kubernetes namespace name (a DNS label)`);
      return raw;
    },
  }),
  rescanInterval: option({
    group: 'watch',
    flag: 'rescan-interval',
    default: '60',
    doc: 'Seconds between reconciling rescans of the local dirs (catches missed file events); 0 disables.',
    parse: parsers.number(0, 86_400),
  }),
  incompleteGrace: option({
    group: 'watch',
    flag: 'incomplete-grace',
    default: '10',
    doc: 'Seconds an invalid index, or one whose data file does not match, may stay so before it is reported as bad input.',
    parse: parsers.number(0, 3600),
  }),
  maxPartitions: option({
    group: 'watch',
    flag: 'max-partitions',
    default: '1000000',
    doc: 'Largest map output accepted, in reduce partitions: an index file above `(n + 1) * 8` bytes is refused and reported, not read.',
    parse: parsers.int(1, 100_000_000),
  }),
  sparkSubDirs: option({
    group: 'watch',
    flag: 'spark-sub-dirs',
    default: '64',
    doc: "The executors' `spark.diskStore.subDirectories`: only the sub-directories Spark makes (`00` .. its value - 1, in hex) are watched.",
    parse: parsers.int(1, 65_536),
  }),
  maxBlockManagerDirs: option({
    group: 'watch',
    flag: 'max-block-manager-dirs',
    default: '8',
    doc: 'Most `blockmgr-*` directories watched in one executor directory (Spark makes one per local dir); more are reported and left alone.',
    parse: parsers.int(1, 10_000),
  }),
  maxWatchedDirs: option({
    group: 'watch',
    flag: 'max-watched-dirs',
    default: '16384',
    doc: 'Most directories watched in all (one inotify watch each; an executor needs about 66). Keep `fs.inotify.max_user_watches` above it.',
    parse: parsers.int(1, 10_000_000),
  }),
  fileEvents: option({
    group: 'watch',
    flag: 'file-events',
    metavar: 'HOW',
    default: 'auto',
    doc: "What watches the `NN` directories where executors write: `inotifywait` (Debian's inotify-tools, in the image: the kernel reports no writes and Spark's scratch files never reach the agent), `fs.watch` (Node's own), or `auto`: `inotifywait` when it is on the `PATH`, else `fs.watch`. The choice is logged at start and exported as `shuffle_agent_file_events_backend`.",
    parse: parsers.oneOf(['auto', 'inotifywait', 'fs.watch'] as const),
  }),
  store: option({
    group: 'store',
    flag: 'store',
    metavar: 'URL',
    default: 'file:./var/fallback',
    doc: 'Where copies go: `file:///abs/path`, `file:./relative`, or `s3://bucket/prefix`. Point `spark.storage.decommission.fallbackStorage.path` at the same place.',
    parse: (raw) => {
      if (!/^(file:|s3:\/\/)/.test(raw)) throw new Error(`expected file:PATH or s3://bucket/prefix, got ${JSON.stringify(raw)}`);
      return raw;
    },
  }),
  fallbackLayout: option({
    group: 'store',
    flag: 'fallback-layout',
    metavar: 'LAYOUT',
    default: 'spark-3.3',
    doc: 'Key layout: `spark-3.3` (`<app>/<shuffle>/<hash>/<file>`, Spark 3.3+) or `spark-3.1` (`<app>/<shuffle>/<file>`).',
    parse: parsers.oneOf(FALLBACK_LAYOUTS),
  }),
  s3Endpoint: option({
    group: 'store',
    flag: 's3-endpoint',
    metavar: 'URL',
    doc: 'S3 endpoint URL for MinIO, Ceph, Swift or tests (e.g. `http://127.0.0.1:9000`). Unset: the AWS SDK resolves it for every request, uploads included (`AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, FIPS and dual-stack settings, else AWS S3).',
    parse: (raw) => {
      if (!/^https?:\/\/[^/]+/.test(raw)) throw new Error(`expected http(s)://host[:port], got ${JSON.stringify(raw)}`);
      return raw.replace(/\/+$/, '');
    },
  }),
  s3Region: option({
    group: 'store',
    flag: 's3-region',
    metavar: 'REGION',
    doc: 'S3 region. Default: env `AWS_REGION`, else `us-east-1`.',
    parse: parsers.string,
  }),
  s3ForcePathStyle: option({
    group: 'store',
    flag: 's3-force-path-style',
    default: 'false',
    boolean: true,
    doc: 'Path-style addressing (`endpoint/bucket/key`), needed by most non-AWS servers.',
    parse: parsers.bool,
  }),
  s3Checksums: option({
    group: 'store',
    flag: 's3-checksums',
    metavar: 'MODE',
    default: 'when_supported',
    doc: 'SDK flexible checksums: `when_supported` (AWS S3, recent MinIO) or `when_required` (Swift s3api, Ceph RGW before Squid, s3rver, older MinIO). Content-MD5 is always sent.',
    parse: parsers.oneOf(S3_CHECKSUM_MODES),
  }),
  s3MultipartThreshold: option({
    group: 'store',
    flag: 's3-multipart-threshold',
    default: '64MiB',
    doc: 'Files larger than this are sent as multipart uploads (smaller ones in one PutObject: fewer requests, and far cheaper on Swift).',
    parse: (raw) => {
      const n = parsers.bytes(raw);
      if (n < 1 || n > 5 * 1024 ** 3) throw new Error('must be between 1 byte and 5GiB');
      return n;
    },
  }),
  s3PartSize: option({
    group: 'store',
    flag: 's3-part-size',
    default: '16MiB',
    doc: 'Multipart part size (at least 5MiB; grows so that a file needs at most 1000 parts).',
    parse: (raw) => {
      const n = parsers.bytes(raw);
      if (n < 5 * 1024 ** 2 || n > 5 * 1024 ** 3) throw new Error('must be between 5MiB and 5GiB');
      return n;
    },
  }),
  s3PartConcurrency: option({
    group: 'store',
    flag: 's3-part-concurrency',
    default: '4',
    doc: 'Parts of one multipart upload sent at once.',
    parse: parsers.int(1, 64),
  }),
  s3MaxConcurrentRequests: option({
    group: 'store',
    flag: 's3-max-concurrent-requests',
    default: '8',
    doc: 'Upload requests (PUTs and parts) in flight at once, across all outputs.',
    parse: parsers.int(1, 256),
  }),
  s3RequestTimeout: option({
    group: 'store',
    flag: 's3-request-timeout',
    default: '30',
    doc: 'Seconds a request may go without any traffic before it fails and is retried.',
    parse: parsers.number(0.1, 3600),
  }),
  storeProbeInterval: option({
    group: 'store',
    flag: 'store-probe-interval',
    default: '5',
    doc: 'Seconds between probes of the store (S3 HeadBucket; the file store root), skipped while writes succeed; a failed write probes at once. `/readyz` answers 503 while the store does not answer. 0 probes only at start and after failed writes.',
    parse: parsers.number(0, 3600),
  }),
  storeProbeTimeout: option({
    group: 'store',
    flag: 'store-probe-timeout',
    default: '4',
    doc: 'Seconds a store probe may take before the store counts as not answering.',
    parse: parsers.number(0.1, 600),
  }),
  s3StaleUploadAge: option({
    group: 'store',
    flag: 's3-stale-upload-age',
    default: '3600',
    doc: 'At start, abort multipart uploads under the prefix older than this many seconds (left by crashed agents); 0 disables.',
    parse: parsers.number(0, 30 * 86_400),
  }),
  maxUploadBandwidth: option({
    group: 'store',
    flag: 'max-upload-bandwidth',
    default: '0',
    doc: 'Upload bandwidth ceiling in bytes/s (`100MiB` works), so write-back leaves network to running tasks; 0 = unlimited. Lifted while draining.',
    parse: parsers.bytes,
  }),
  uploadConcurrency: option({
    group: 'writeback',
    flag: 'upload-concurrency',
    default: '16',
    doc: 'Map outputs written to the store at once (small outputs are latency-bound: fsyncs, round trips).',
    parse: parsers.int(1, 256),
  }),
  writeOrder: option({
    group: 'writeback',
    flag: 'write-order',
    metavar: 'ORDER',
    default: 'fifo',
    doc: `Order of pending outputs: ${WRITE_ORDERS.join(', ')}.`,
    parse: parsers.oneOf(WRITE_ORDERS),
  }),
  maxHeldOutputs: option({
    group: 'writeback',
    flag: 'max-held-outputs',
    default: '2048',
    doc: 'Pending outputs whose files are held open (2 descriptors each) so they survive Spark deleting its directory.',
    parse: parsers.int(0, 1_000_000),
  }),
  forgetGoneOutputsAfter: option({
    group: 'writeback',
    flag: 'forget-gone-outputs-after',
    default: '1h',
    doc: 'How long the agent keeps a stored output in memory after its executor\'s directory went away (served without a store lookup); then it is listed and served from the store like any output this agent never saw. Bounds the agent\'s memory on a node whose executors come and go (it keeps about 2 KiB per output of 200 partitions, 16 KiB of 2000; npm run bench:writeback-memory).',
    parse: parsers.durationIn('1s', '30d'),
  }),
  httpListen: option({
    group: 'serve',
    flag: 'http-listen',
    metavar: 'HOST:PORT',
    default: '127.0.0.1:9464',
    doc: 'Address of the HTTP server. Open to every peer: `/healthz`, `/readyz`, `/metrics`, the redacted `/v1/status` (no app ids, paths or errors; `?wait=` long-polls) and `/v1/app-token`. Only for loopback peers (the agent\'s own pod): `/v1/drain`, `drain=true` and the full `/v1/status` (app ids, paths, errors).',
    parse: parsers.listen,
  }),
  grpcListen: option({
    group: 'serve',
    flag: 'grpc-listen',
    metavar: 'HOST:PORT',
    default: '127.0.0.1:7337',
    doc: 'Address of the gRPC block service.',
    parse: parsers.listen,
  }),
  grpcTlsCert: option({
    group: 'serve',
    flag: 'grpc-tls-cert',
    metavar: 'FILE',
    doc: 'PEM certificate chain of the gRPC server; with `--grpc-tls-key` turns TLS on.',
    parse: parsers.string,
  }),
  grpcTlsKey: option({
    group: 'serve',
    flag: 'grpc-tls-key',
    metavar: 'FILE',
    doc: 'PEM private key of the gRPC server.',
    parse: parsers.string,
  }),
  grpcTlsClientCa: option({
    group: 'serve',
    flag: 'grpc-tls-client-ca',
    metavar: 'FILE',
    doc: 'PEM CA bundle: clients must present a certificate it signed (mTLS). Needs `--grpc-tls-cert`.',
    parse: parsers.string,
  }),
  grpcTokenFile: option({
    group: 'serve',
    flag: 'grpc-token-file',
    metavar: 'FILE',
    doc: 'File holding a shared token; clients then must send `authorization: Bearer <token>` (UNAUTHENTICATED otherwise). Re-read every `--grpc-token-reload-interval`: a changed token takes effect without a restart, and the previous one is still accepted for 5 minutes.',
    parse: parsers.string,
  }),
  grpcAppKeyFile: option({
    group: 'serve',
    flag: 'grpc-app-key-file',
    metavar: 'FILE',
    doc: 'File holding the cluster key of per-app tokens (at least 32 bytes; the same Secret on every node). A client then may send `authorization: Bearer <app token>` (`shuffle-agent app-token`, or `POST /v1/app-token` from the app\'s own executor directory): it reads that app\'s outputs only, and cannot drain. Re-read with the token file.',
    parse: parsers.string,
  }),
  grpcServeUnseenApps: option({
    group: 'serve',
    flag: 'grpc-serve-unseen-apps',
    default: 'false',
    boolean: true,
    doc: 'DaemonSet mode: also serve, from the store, apps none of whose outputs this agent has seen on its node (NOT_FOUND otherwise). A sidecar (no `{appId}` in `--local-dirs-layout`) serves only its own `--app-id`, always.',
    parse: parsers.bool,
  }),
  grpcMaxStreamsPerConnection: option({
    group: 'serve',
    flag: 'grpc-max-streams-per-connection',
    default: '128',
    doc: 'HTTP/2 streams one gRPC connection may have open at once (the SETTINGS value); the service-wide limits still apply.',
    parse: parsers.int(1, 1000),
  }),
  grpcAppTokenTtl: option({
    group: 'serve',
    flag: 'grpc-app-token-ttl',
    default: '12h',
    doc: 'How long a per-app token issued by `POST /v1/app-token` is valid (e.g. `12h`, `7d`); clients ask again before it expires (the answer says when).',
    parse: parsers.durationIn('1m', '30d'),
  }),
  grpcMaxConnections: option({
    group: 'serve',
    flag: 'grpc-max-connections',
    default: '1024',
    doc: 'gRPC connections open at once (each costs about 15 KB even idle); a connection beyond it is closed as it arrives.',
    parse: parsers.int(1, 1_000_000),
  }),
  grpcIdleTimeout: option({
    group: 'serve',
    flag: 'grpc-idle-timeout',
    default: '300',
    doc: 'Seconds a gRPC connection may stay open without a stream before it is closed (GOAWAY; clients reconnect when they need to); 0: never (fractions allowed).',
    parse: parsers.number(0, 86_400),
  }),
  grpcRequestBodyTimeout: option({
    group: 'serve',
    flag: 'grpc-request-body-timeout',
    default: '10',
    doc: 'Seconds a gRPC request message may take to arrive whole after its headers; then the call is cancelled and its buffers freed (fractions allowed).',
    parse: parsers.number(0.05, 600),
  }),
  grpcTokenReloadInterval: option({
    group: 'serve',
    flag: 'grpc-token-reload-interval',
    default: '10',
    doc: 'Seconds between reads of `--grpc-token-file` and `--grpc-app-key-file` (fractions allowed).',
    parse: parsers.number(0.05, 3600),
  }),
  grpcMaxStreams: option({
    group: 'serve',
    flag: 'grpc-max-streams',
    default: '256',
    doc: 'Concurrent fetch and list streams; more are refused with RESOURCE_EXHAUSTED. One app may hold half of them at most.',
    parse: parsers.int(1, 100_000),
  }),
  grpcChunkSize: option({
    group: 'serve',
    flag: 'grpc-chunk-size',
    default: '1MiB',
    doc: 'Largest chunk of a gRPC fetch stream (at most 4 MiB - 1 KiB, the default receive limit of clients).',
    parse: (raw) => {
      const n = parsers.bytes(raw);
      if (n < 4096 || n > 4 * 1024 * 1024 - 1024) throw new Error(`must be between 4KiB and 4MiB-1KiB, got ${n}`);
      return n;
    },
  }),
  grpcMaxBuffered: option({
    group: 'serve',
    flag: 'grpc-max-buffered',
    default: '32MiB',
    doc: 'Bytes read for gRPC streams and not yet sent, over all streams: bounds memory. Chunks shrink (to 64 KiB at least) when many streams share it; each stream may still hold one chunk.',
    parse: (raw) => {
      const n = parsers.bytes(raw);
      if (n < 1024 * 1024) throw new Error(`must be at least 1MiB, got ${n}`);
      return n;
    },
  }),
  grpcCloseTimeout: option({
    group: 'serve',
    flag: 'grpc-close-timeout',
    default: '5',
    doc: 'Seconds running gRPC fetches may take to finish when the agent stops, before they are cut.',
    parse: parsers.number(0, 600),
  }),
  terminationSources: option({
    group: 'lifecycle',
    flag: 'termination-sources',
    metavar: 'LIST',
    default: 'sigterm',
    doc: `What tells the agent it will be stopped, comma-separated: ${TERMINATION_SOURCES.join(', ')}. \`sigterm\` handles SIGTERM and SIGINT (drain, then exit); the cloud sources poll their metadata service and drain without exiting.`,
    parse: (raw) => {
      const names = parsers.list(raw);
      for (const n of names) parsers.oneOf(TERMINATION_SOURCES)(n);
      return [...new Set(names)] as TerminationSourceName[];
    },
  }),
  // The three metadata endpoints exist so tests (and unusual networks) can point at a fake server.
  awsMetadataEndpoint: option({
    group: 'lifecycle',
    flag: 'aws-metadata-endpoint',
    default: 'http://169.254.169.254',
    doc: 'AWS instance metadata (IMDSv2) base URL. Overridable for tests; a pod off the host network needs an IMDS hop limit of 2.',
    parse: httpUrl,
  }),
  gcpMetadataEndpoint: option({
    group: 'lifecycle',
    flag: 'gcp-metadata-endpoint',
    default: 'http://metadata.google.internal',
    doc: 'GCP metadata server base URL. Overridable for tests.',
    parse: httpUrl,
  }),
  azureMetadataEndpoint: option({
    group: 'lifecycle',
    flag: 'azure-metadata-endpoint',
    default: 'http://169.254.169.254',
    doc: 'Azure instance metadata (Scheduled Events) base URL. Overridable for tests.',
    parse: httpUrl,
  }),
  noticePollInterval: option({
    group: 'lifecycle',
    flag: 'notice-poll-interval',
    default: '2',
    doc: 'Seconds between polls of the AWS and Azure metadata services, and the pause after a failed request (fractions allowed). GCP long-polls instead.',
    parse: parsers.number(0.01, 3600),
  }),
  metadataTimeout: option({
    group: 'lifecycle',
    flag: 'metadata-timeout',
    default: '2',
    doc: 'Seconds one metadata request may take before it is abandoned and polled again (a hanging server never stalls the agent).',
    parse: parsers.number(0.01, 600),
  }),
  awsTokenTtl: option({
    group: 'lifecycle',
    flag: 'aws-token-ttl',
    default: '21600',
    doc: 'Lifetime in seconds requested for the IMDSv2 session token; it is renewed before it expires.',
    parse: parsers.int(1, 21_600),
  }),
  drainTimeout: option({
    group: 'lifecycle',
    flag: 'drain-timeout',
    default: '25',
    doc: "Seconds to drain after SIGTERM before exiting anyway (exit code 3 when outputs are not stored). Keep it below the pod's `terminationGracePeriodSeconds` (30 s by default).",
    parse: parsers.number(0, 86_400),
  }),
  drainConcurrency: option({
    group: 'lifecycle',
    flag: 'drain-concurrency',
    default: '16',
    doc: 'Map outputs written at once while draining (or after an early warning); never lowers `--upload-concurrency`.',
    parse: parsers.int(1, 256),
  }),
  drainOrder: option({
    group: 'lifecycle',
    flag: 'drain-order',
    metavar: 'ORDER',
    default: 'smallest-first',
    doc: `Write order while draining: ${WRITE_ORDERS.join(', ')}. The default saved the most complete map outputs before a deadline in \`npm run bench:drain-order\` (bench/RESULTS.md).`,
    parse: parsers.oneOf(WRITE_ORDERS),
  }),
  drainOnRebalance: option({
    group: 'lifecycle',
    flag: 'drain-on-rebalance',
    default: 'false',
    boolean: true,
    doc: 'Treat an AWS rebalance recommendation as a drain. Without it, the recommendation only lifts the bandwidth ceiling and raises concurrency.',
    parse: parsers.bool,
  }),
  azureAck: option({
    group: 'lifecycle',
    flag: 'azure-ack',
    default: 'true',
    boolean: true,
    doc: 'Acknowledge Azure Preempt/Terminate events (`StartRequests`) once safe to exit, so Azure need not wait for `NotBefore`. `--azure-ack=false` to leave them.',
    parse: parsers.bool,
  }),
  safeExitFile: option({
    group: 'lifecycle',
    flag: 'safe-exit-file',
    metavar: 'FILE',
    doc: 'Marker file present (JSON summary, written atomically) exactly while the agent is `safe_to_exit`; removed when new outputs are committed.',
    parse: (raw) => {
      if (raw.trim() === '') throw new Error('needs a path');
      return raw;
    },
  }),
  terminationMessagePath: option({
    group: 'observability',
    flag: 'termination-message-path',
    metavar: 'FILE',
    default: '',
    doc: "File the exit is written to as one JSON line (exit code, reason, outputs not stored), for Kubernetes to show in the pod's status (`/dev/termination-log`, the container's `terminationMessagePath`). Empty: none.",
    parse: parsers.string,
  }),
  logLevel: option({
    group: 'observability',
    flag: 'log-level',
    metavar: 'LEVEL',
    default: 'info',
    doc: `Log level: ${LOG_LEVELS.join(', ')}.`,
    parse: parsers.oneOf(LOG_LEVELS),
  }),
};

function httpUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error(`expected an http:// URL, got ${JSON.stringify(raw)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`expected an http:// URL, got ${JSON.stringify(raw)}`);
  return raw.replace(/\/+$/, '');
}

export type RunConfig = ValuesOf<typeof RUN_OPTIONS> & { appId: string };
