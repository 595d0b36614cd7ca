/**
 * Prometheus metrics behind a small facade with domain verbs. Labels are low-cardinality kinds
 * only: never an app, shuffle or block id.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { WritebackMetrics, WritebackStatus } from '../writeback/writeback-queue.js';
import type { S3StoreMetrics } from '../store/s3/s3-store.js';
import type { ServeMetrics } from '../serve/types.js';
import type { FileEventsStatus } from '../watch/local-dir-watcher.js';

const FILE_EVENTS_BACKENDS = ['inotifywait', 'fs.watch'] as const;

/** How often the event loop's delay is sampled for the `nodejs_eventloop_lag_*` metrics. */
const EVENT_LOOP_SAMPLE_MS = 100;

export const METRIC_PREFIX = 'shuffle_agent_';

/**
 * Label values every labelled counter starts with at zero, so that `increase()` and `rate()` see
 * the first event (a series that appears with value 1 has no increase to Prometheus). Other
 * values still appear when they first happen.
 */
export const INITIAL_LABELS = {
  writeErrorKinds: ['transient', 'permanent', 'source-gone', 'source-changed', 'bad-input'],
  dropReasons: ['cleaned-up', 'source-gone', 'bad-input'],
  storeOps: ['PutObject', 'UploadPart', 'CreateMultipartUpload', 'CompleteMultipartUpload', 'HeadObject', 'GetObject', 'ListObjectsV2', 'HeadBucket'],
  storeOutcomes: ['ok', 'transient', 'permanent', 'not-found'],
  probeOutcomes: ['ok', 'transient', 'permanent'],
  fetchSources: ['local', 'store'],
  grpcCodes: ['UNAUTHENTICATED', 'PERMISSION_DENIED', 'NOT_FOUND', 'INVALID_ARGUMENT', 'RESOURCE_EXHAUSTED', 'UNAVAILABLE', 'INTERNAL', 'CANCELLED', 'DEADLINE_EXCEEDED'],
  watchProblems: ['incomplete', 'symlink', 'unreadable', 'watch-error', 'watch-limit'],
  noticeSources: ['signal', 'aws', 'gcp', 'azure', 'http', 'grpc'],
  noticeKinds: ['exit', 'terminate', 'rebalance', 'drain'],
} as const;

/**
 * Implements the metrics interfaces of writeback/, store/ and serve/ (checked here), and those of
 * lifecycle/ structurally (checked where main.ts passes it): lifecycle/ uses the HTTP server of
 * observability/, so observability/ imports nothing from lifecycle/ (no import cycle).
 */
export class AgentMetrics implements WritebackMetrics, S3StoreMetrics, ServeMetrics {
  readonly registry = new Registry();
  private readonly persistedFilesTotal: Counter;
  private readonly persistedBytesTotal: Counter;
  private readonly persistedOutputsTotal: Counter;
  private readonly lag: Histogram;
  private readonly errors: Counter<'kind'>;
  private readonly droppedTotal: Counter<'reason'>;
  private readonly skippedTotal: Counter;
  private readonly committedTotal: Counter;
  private readonly watchProblems: Counter<'kind'>;
  private readonly storeRequests: Counter<'op' | 'outcome'>;
  private readonly storeRetries: Counter<'op' | 'reason'>;
  private readonly storeBytes: Counter;
  private readonly notices: Counter<'source' | 'kind'>;
  private readonly metadataErrors: Counter<'source' | 'kind'>;
  private readonly drains: Counter;
  private readonly unhandledRejections: Counter;
  private readonly refusedOutputs: Counter;
  private readonly drainDuration: Histogram;
  private readonly notStored: Gauge;
  private readonly grpcFetches: Counter<'source'>;
  private readonly grpcBytes: Counter<'source'>;
  private readonly grpcErrors: Counter<'code'>;
  private readonly grpcActive: Gauge;
  private readonly storeUpGauge: Gauge;
  private readonly storeProbes: Counter<'outcome'>;

  constructor(
    source: {
      writeback: () => WritebackStatus;
      state: () => string;
      states: readonly string[];
      /** Bytes the gRPC service has read and not yet sent (0 until it runs). */
      grpcBufferedBytes?: () => number;
      /** For `shuffle_agent_build_info`. */
      version?: string;
      /** What watches the NN directories, and inotifywait's restarts (from the watcher). */
      fileEvents?: () => FileEventsStatus;
    },
    options: { processMetrics?: boolean } = {},
  ) {
    const registers = [this.registry];
    // Event-loop lag is sampled every 100 ms rather than prom-client's 10 ms: a timer 100 times a
    // second kept an idle agent at about 7 ms of CPU per second (0.4 s per minute of a job),
    // a large share of what the agent costs a job that loses nothing. Stalls of 100 ms and more,
    // the ones that delay serving, are still all seen; shorter ones only when they cover a tick.
    if (options.processMetrics !== false) {
      collectDefaultMetrics({ register: this.registry, prefix: METRIC_PREFIX, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
    }
    const p = METRIC_PREFIX;
    new Gauge({
      name: `${p}pending_files`,
      help: 'Committed files not yet persisted.',
      registers,
      collect() {
        this.set(source.writeback().pendingFiles);
      },
    });
    new Gauge({
      name: `${p}pending_bytes`,
      help: 'Bytes of committed files not yet persisted.',
      registers,
      collect() {
        this.set(source.writeback().pendingBytes);
      },
    });
    new Gauge({
      name: `${p}pending_outputs`,
      help: 'Committed map outputs not yet persisted.',
      registers,
      collect() {
        this.set(source.writeback().pendingOutputs);
      },
    });
    new Gauge({
      name: `${p}failing_files`,
      help: 'Pending files whose last write-back attempt failed (being retried).',
      registers,
      collect() {
        this.set(source.writeback().failedFiles);
      },
    });
    // Without a watcher (tests of other parts) these two stay empty.
    new Gauge({
      name: `${p}file_events_backend`,
      help: 'What watches the NN directories: 1 for the backend in use (inotifywait, or fs.watch), 0 for the other.',
      labelNames: ['backend'],
      registers,
      collect() {
        const current = source.fileEvents?.().backend;
        if (current !== undefined) for (const b of FILE_EVENTS_BACKENDS) this.set({ backend: b }, b === current ? 1 : 0);
      },
    });
    new Gauge({
      name: `${p}inotifywait_restarts`,
      help: 'inotifywait children that exited unasked or reported a kernel queue overflow since start (each followed by a listing of every NN directory).',
      registers,
      collect() {
        const s = source.fileEvents?.();
        if (s) this.set(s.died + s.overflows);
      },
    });
    new Gauge({
      name: `${p}state`,
      help: 'Lifecycle state: 1 for the current state, 0 for the others.',
      labelNames: ['state'],
      registers,
      collect() {
        const current = source.state();
        for (const s of source.states) this.set({ state: s }, s === current ? 1 : 0);
      },
    });
    this.persistedFilesTotal = new Counter({ name: `${p}persisted_files_total`, help: 'Files written to the store.', registers });
    this.persistedBytesTotal = new Counter({ name: `${p}persisted_bytes_total`, help: 'Bytes written to the store.', registers });
    this.persistedOutputsTotal = new Counter({ name: `${p}persisted_outputs_total`, help: 'Map outputs completely written (data and index).', registers });
    this.committedTotal = new Counter({ name: `${p}committed_outputs_total`, help: 'Map outputs seen committed on local disk.', registers });
    this.lag = new Histogram({
      name: `${p}commit_to_persisted_seconds`,
      help: 'Time from seeing a map output committed to having it persisted.',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    });
    this.errors = new Counter({ name: `${p}writeback_errors_total`, help: 'Failed write-back attempts, by kind.', labelNames: ['kind'], registers });
    this.droppedTotal = new Counter({
      name: `${p}writeback_dropped_outputs_total`,
      help: 'Pending outputs dropped: cleaned-up (Spark removed the shuffle) or source-gone (files vanished before they could be read).',
      labelNames: ['reason'],
      registers,
    });
    this.skippedTotal = new Counter({ name: `${p}already_stored_files_total`, help: 'Files found intact in the store after a restart and not sent again.', registers });
    this.storeRequests = new Counter({ name: `${p}store_requests_total`, help: 'S3 requests by operation and outcome (ok, or the error kind).', labelNames: ['op', 'outcome'], registers });
    this.storeRetries = new Counter({ name: `${p}store_retries_total`, help: 'S3 requests retried, by operation and error code.', labelNames: ['op', 'reason'], registers });
    this.storeBytes = new Counter({ name: `${p}store_uploaded_bytes_total`, help: 'Body bytes sent to S3, retried parts included.', registers });
    this.grpcFetches = new Counter({ name: `${p}grpc_fetches_total`, help: 'gRPC block fetches, by source (local, store).', labelNames: ['source'], registers });
    this.grpcBytes = new Counter({ name: `${p}grpc_sent_bytes_total`, help: 'Bytes sent by gRPC fetches, by source.', labelNames: ['source'], registers });
    this.grpcErrors = new Counter({ name: `${p}grpc_errors_total`, help: 'gRPC calls that ended with a non-OK status, by code.', labelNames: ['code'], registers });
    this.grpcActive = new Gauge({ name: `${p}grpc_active_streams`, help: 'gRPC server streams open.', registers });
    new Gauge({
      name: `${p}grpc_buffered_bytes`,
      help: 'Bytes the gRPC service read for clients and their sockets have not taken yet (bounded by --grpc-max-buffered).',
      registers,
      collect() {
        this.set(source.grpcBufferedBytes?.() ?? 0);
      },
    });
    this.watchProblems = new Counter({ name: `${p}watch_problems_total`, help: 'Bad local input reported by the watcher, by kind.', labelNames: ['kind'], registers });
    this.notices = new Counter({
      name: `${p}termination_notices_total`,
      help: 'Termination notices received (duplicates not counted), by source (signal, aws, gcp, azure, http, grpc) and kind (exit, terminate, rebalance, drain).',
      labelNames: ['source', 'kind'],
      registers,
    });
    this.metadataErrors = new Counter({
      name: `${p}metadata_errors_total`,
      help: 'Failed polls of a cloud metadata service, by source and kind (timeout, unreachable, http-<status>, malformed, token).',
      labelNames: ['source', 'kind'],
      registers,
    });
    this.drains = new Counter({ name: `${p}drains_total`, help: 'Drains started.', registers });
    this.unhandledRejections = new Counter({
      name: `${p}unhandled_rejections_total`,
      help: 'Promise rejections nothing handled (a bug): logged and counted, the agent keeps serving. Alert on any increase.',
      registers,
    });
    this.refusedOutputs = new Counter({
      name: `${p}refused_outputs_total`,
      help: 'Map outputs (and their removals) neither stored nor served: their app id belongs to another namespace, on this node or in the store.',
      registers,
    });
    this.drainDuration = new Histogram({
      name: `${p}drain_duration_seconds`,
      help: 'Time from the start of a drain to safe_to_exit (observed on every entry into safe_to_exit).',
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300],
      registers,
    });
    this.notStored = new Gauge({
      name: `${p}outputs_not_stored_at_exit`,
      help: 'Committed map outputs not stored when the drain ended (set when the exit is requested, before closing; the termination message file has the final count).',
      registers,
    });
    this.storeUpGauge = new Gauge({ name: `${p}store_up`, help: 'Whether the store answered its last probe (1) or not (0).', registers });
    this.storeProbes = new Counter({ name: `${p}store_probes_total`, help: 'Store probes (HeadBucket, or the file store root), by outcome (ok, transient, permanent).', labelNames: ['outcome'], registers });
    const buildInfo = new Gauge({ name: `${p}build_info`, help: 'Always 1; the labels say which agent runs on which Node.', labelNames: ['version', 'node'], registers });
    buildInfo.set({ version: source.version ?? 'unknown', node: process.version }, 1);

    const L = INITIAL_LABELS;
    for (const kind of L.writeErrorKinds) this.errors.inc({ kind }, 0);
    for (const reason of L.dropReasons) this.droppedTotal.inc({ reason }, 0);
    for (const op of L.storeOps) for (const outcome of L.storeOutcomes) this.storeRequests.inc({ op, outcome }, 0);
    for (const outcome of L.probeOutcomes) this.storeProbes.inc({ outcome }, 0);
    for (const src of L.fetchSources) {
      this.grpcFetches.inc({ source: src }, 0);
      this.grpcBytes.inc({ source: src }, 0);
    }
    for (const code of L.grpcCodes) this.grpcErrors.inc({ code }, 0);
    for (const kind of L.watchProblems) this.watchProblems.inc({ kind }, 0);
    for (const src of L.noticeSources) for (const kind of L.noticeKinds) this.notices.inc({ source: src, kind }, 0);
  }

  storeUp(up: boolean): void {
    this.storeUpGauge.set(up ? 1 : 0);
  }

  storeProbe(outcome: string): void {
    this.storeProbes.inc({ outcome });
  }

  noticeReceived(source: string, kind: string): void {
    this.notices.inc({ source, kind });
  }

  metadataError(source: string, kind: string): void {
    this.metadataErrors.inc({ source, kind });
  }

  outputRefused(): void {
    this.refusedOutputs.inc();
  }

  unhandledRejection(): void {
    this.unhandledRejections.inc();
  }

  drainStarted(): void {
    this.drains.inc();
  }

  safeToExit(seconds: number): void {
    this.drainDuration.observe(seconds);
  }

  exiting(outputsNotStored: number): void {
    this.notStored.set(outputsNotStored);
  }

  outputCommitted(): void {
    this.committedTotal.inc();
  }

  filePersisted(bytes: number): void {
    this.persistedFilesTotal.inc();
    this.persistedBytesTotal.inc(bytes);
  }

  outputPersisted(lagSeconds: number): void {
    this.persistedOutputsTotal.inc();
    this.lag.observe(lagSeconds);
  }

  writeError(kind: string): void {
    this.errors.inc({ kind });
  }

  dropped(reason: string): void {
    this.droppedTotal.inc({ reason });
  }

  skippedAlreadyStored(files: number): void {
    this.skippedTotal.inc(files);
  }

  request(op: string, outcome: string): void {
    this.storeRequests.inc({ op, outcome });
  }

  retry(op: string, reason: string): void {
    this.storeRetries.inc({ op, reason });
  }

  bytesUploaded(bytes: number): void {
    this.storeBytes.inc(bytes);
  }

  fetch(source: 'local' | 'store', bytes: number): void {
    this.grpcFetches.inc({ source });
    this.grpcBytes.inc({ source }, bytes);
  }

  error(code: string): void {
    this.grpcErrors.inc({ code });
  }

  streamOpened(): void {
    this.grpcActive.inc();
  }

  streamClosed(): void {
    this.grpcActive.dec();
  }

  watchProblem(kind: string): void {
    this.watchProblems.inc({ kind });
  }
}
