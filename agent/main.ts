/**
 * The one place that constructs real things: store, write-back queue, watcher, HTTP server,
 * metrics, and wires them. Everything else gets what it needs passed in.
 */
import type { Logger } from 'pino';
import type { RunConfig } from './config/run-options.js';
import { AgentMetrics } from './observability/metrics.js';
import { HttpServer } from './observability/http-server.js';
import { AGENT_STATES, AgentState } from './lifecycle/agent-state.js';
import { openStore } from './store/open-store.js';
import { grpcServerOptions, startGrpcServer, TokenFile } from './serve/index.js';
import { AppTokenIssuer } from './serve/app-token-proof.js';
import { appKeysFromFile } from './serve/config.js';
import { parseLayout } from './watch/layout.js';
import { AppOwners } from './tenancy/app-owners.js';
import { WritebackQueue } from './writeback/writeback-queue.js';
import { LocalDirWatcher } from './watch/local-dir-watcher.js';
import { findOnPath } from './watch/find-binary.js';
import { resolve } from 'node:path';
import { VERSION } from './version.js';
import { Lifecycle } from './lifecycle/lifecycle.js';
import { hasBandwidthControl, type ExitOutcome } from './lifecycle/drain-handler.js';
import { registerLifecycleRoutes } from './lifecycle/http-routes.js';
import { lifecycleView } from './lifecycle/status-view.js';
import { statusDocuments } from './lifecycle/status-document.js';
import { StoreHealth } from './lifecycle/store-health.js';
import { openSources } from './lifecycle/sources/open-sources.js';
import type { TerminationSource } from './lifecycle/notice.js';

export interface Agent {
  readonly state: AgentState;
  readonly writeback: WritebackQueue;
  readonly watcher: LocalDirWatcher;
  readonly http: { host: string; port: number };
  /** Termination sources, drain, safe-exit: what the gRPC status and drain RPCs call. */
  readonly lifecycle: Lifecycle;
  readonly metrics: AgentMetrics;
  /** Status document served at `/v1/status` to loopback peers (bounded). */
  status(): Record<string, unknown>;
  /** Resolves when the process should exit (SIGTERM drained or timed out, or a second signal). */
  readonly exitRequested: Promise<ExitOutcome>;
  /** Stop everything, in reverse order of start. Idempotent. */
  close(): Promise<void>;
}

export interface StartOptions {
  /** Replace the sources `--termination-sources` names (tests, embedding). */
  sources?: TerminationSource[];
}

export async function startAgent(config: RunConfig, logger: Logger, options: StartOptions = {}): Promise<Agent> {
  const started: Array<{ name: string; close: () => Promise<void> }> = [];
  const state = new AgentState(logger);
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    (closing ??= (async () => {
      state.transition('stopping', 'closing');
      for (const step of started.reverse()) {
        try {
          await step.close();
        } catch (err) {
          logger.error({ err, step: step.name }, 'close step failed');
        }
      }
    })());

  try {
    // The gauges read the queue's status when scraped, after it exists.
    // The gRPC server starts later; the gauge reads it once it runs.
    let grpcBufferedBytes = (): number => 0;
    const metrics: AgentMetrics = new AgentMetrics({
      writeback: () => writeback.status(),
      state: () => state.state,
      states: AGENT_STATES,
      grpcBufferedBytes: () => grpcBufferedBytes(),
      fileEvents: () => watcher.fileEvents(),
      version: VERSION,
    });
    const store = await openStore(config.store, {
      s3Endpoint: config.s3Endpoint,
      s3Region: config.s3Region,
      s3ForcePathStyle: config.s3ForcePathStyle,
      s3Checksums: config.s3Checksums,
      s3MultipartThreshold: config.s3MultipartThreshold,
      s3PartSize: config.s3PartSize,
      s3PartConcurrency: config.s3PartConcurrency,
      s3MaxConcurrentRequests: config.s3MaxConcurrentRequests,
      s3RequestTimeout: config.s3RequestTimeout,
      s3StaleUploadAge: config.s3StaleUploadAge,
      maxUploadBandwidth: config.maxUploadBandwidth,
      logger,
      s3Metrics: metrics,
    });
    started.push({ name: 'store', close: () => store.close() });
    const health = new StoreHealth({ store, intervalMs: config.storeProbeInterval * 1000, timeoutMs: config.storeProbeTimeout * 1000, logger, metrics, onRecovered: () => writeback.retryNow() });
    // Not awaited: a store that does not answer keeps the agent unready, not unstarted.
    void health.start();
    started.push({ name: 'store-health', close: () => health.close() });

    const writeback = new WritebackQueue({
      store,
      layout: config.fallbackLayout,
      concurrency: config.uploadConcurrency,
      order: config.writeOrder,
      maxHeldOutputs: config.maxHeldOutputs,
      forgetGoneAfterMs: config.forgetGoneOutputsAfter,
      logger,
      // Writes tell the store's health what they saw: a success stands in for a probe, a failure
      // asks for one at once.
      metrics: {
        filePersisted: (bytes) => {
          metrics.filePersisted(bytes);
          health.writeSucceeded();
        },
        outputPersisted: (lag) => metrics.outputPersisted(lag),
        writeError: (kind) => {
          metrics.writeError(kind);
          if (kind === 'transient' || kind === 'permanent') health.writeFailed();
        },
        dropped: (reason) => metrics.dropped(reason),
        skippedAlreadyStored: (files) => metrics.skippedAlreadyStored(files),
      },
      // Written only for the namespace that owns the app id in the store (tenancy/app-owners).
      admit: async (output) => {
        const owned = await owners.claim(output.appId, ownerOf(output));
        if (!owned) metrics.outputRefused();
        return owned;
      },
    });
    started.push({ name: 'writeback', close: () => writeback.close() });

    const inotifywait = config.fileEvents === 'fs.watch' ? undefined : findOnPath('inotifywait');
    if (config.fileEvents === 'inotifywait' && inotifywait === undefined) {
      throw new Error('--file-events inotifywait: no inotifywait on the PATH (Debian package inotify-tools)');
    }
    const watcher = new LocalDirWatcher({
      inotifywait,
      localDirs: config.localDirs,
      layout: config.localDirsLayout,
      defaultAppId: config.appId,
      rescanIntervalMs: config.rescanInterval * 1000,
      incompleteGraceMs: config.incompleteGrace * 1000,
      maxPartitions: config.maxPartitions,
      sparkSubDirs: config.sparkSubDirs,
      maxBlockManagerDirs: config.maxBlockManagerDirs,
      maxWatchedDirs: config.maxWatchedDirs,
    });
    // Apps whose outputs this agent has seen on its node: the only ones it serves in DaemonSet
    // mode, unless --grpc-serve-unseen-apps. A sidecar serves its own app only.
    const seenApps = new Set<string>();
    const layout = parseLayout(config.localDirsLayout);
    const sidecar = !layout.segments.some((seg) => seg.kind === 'appId');
    const servesApp = (appId: string): boolean => (sidecar ? appId === config.appId : config.grpcServeUnseenApps || seenApps.has(appId));
    // An app id names no tenant (users choose spark.app.id): each output is written and served
    // only when its namespace owns the app id, on this node and in the store (tenancy/app-owners).
    const refusedOnce = new Set<string>();
    const owners = new AppOwners(store, (r) => {
      const key = `${r.namespace}|${r.appId}`;
      if (refusedOnce.has(key) || refusedOnce.size > 10_000) return;
      refusedOnce.add(key);
      logger.warn({ app: r.appId, namespace: r.namespace, reason: r.reason }, 'app id refused for this namespace: nothing of it is stored, served or given a token');
    });
    const ownerOf = (o: { namespace?: string }): string => o.namespace ?? config.podNamespace ?? '';
    // A sidecar writes for one app id, known now: ask the store while the agent starts, so that
    // the first output does not wait for the marker's round trips (five on a server without
    // conditional PUTs: about 0.25 s on Swift's s3api, bench:writeback). No output is written
    // before the claim settles either way (writeback's admit awaits this same decision); a store
    // that cannot answer now is asked again by the first output.
    if (sidecar) void owners.claim(config.appId, ownerOf({})).catch(() => undefined);
    // On the node, at once: the first namespace of an app id owns it here, so outputs of one id
    // never mix in the queue, and each is held open as soon as it is committed. In the store,
    // before the first write (writeback's admit, below): the `_owner` marker decides.
    watcher.on('committed', (output) => {
      metrics.outputCommitted();
      logger.debug({ output: output.id, dataLength: output.dataLength, foundAtStart: output.foundAtStart }, 'output committed');
      if (!owners.claimOnNode(output.appId, ownerOf(output))) {
        metrics.outputRefused();
        return;
      }
      seenApps.add(output.appId);
      writeback.add(output);
    });
    watcher.on('removed', (event) => {
      logger.debug({ output: event.output.id, blockManagerDirGone: event.blockManagerDirGone }, 'output removed locally');
      // Another namespace's output of the same id must not remove this one.
      if (owners.ownerOf(event.output.appId) === ownerOf(event.output)) writeback.removed(event);
    });
    watcher.on('problem', (problem) => {
      metrics.watchProblem(problem.kind);
      logger.warn(problem, 'local input problem');
    });

    const lifecycle = new Lifecycle({
      state,
      writeback,
      ...(hasBandwidthControl(store) ? { bandwidth: store } : {}),
      sources: options.sources ?? openSources(config, logger, metrics),
      drainTimeoutMs: config.drainTimeout * 1000,
      drainOnRebalance: config.drainOnRebalance,
      drainConcurrency: Math.max(config.drainConcurrency, config.uploadConcurrency),
      drainOrder: config.drainOrder,
      ...(config.safeExitFile !== undefined ? { safeExitFile: config.safeExitFile } : {}),
      acknowledge: config.azureAck,
      rescan: () => watcher.rescan(),
      settle: () => watcher.settled(),
      logger,
      metrics,
    });
    started.push({ name: 'lifecycle', close: () => lifecycle.close() });
    void lifecycle.exitRequested.then(() => metrics.exiting(writeback.pending().length));
    // Sources start before the initial scan: a notice during a long scan already drains.
    await lifecycle.start();

    const localDirs = config.localDirs.map((d) => resolve(d));
    const documents = statusDocuments({
      version: VERSION,
      writeback: () => writeback.status(),
      apps: () => writeback.apps(),
      problems: () => watcher.problems(),
      lifecycle: () => lifecycle.snapshot(),
      store: () => health.snapshot(),
      facts: { appId: config.appId, localDirs, localDirsLayout: config.localDirsLayout, store: store.url },
    });

    const http = new HttpServer(logger);
    http
      .route('GET', '/healthz', () => ({ status: 200, body: 'ok\n' }))
      .route('GET', '/readyz', () => {
        const ready = documents.readiness();
        return ready.ready ? { status: 200, body: 'ready\n' } : { status: 503, body: `not ready: ${ready.reason ?? 'unknown'}\n` };
      })
      .route('GET', '/metrics', async () => ({ status: 200, body: await metrics.registry.metrics(), contentType: metrics.registry.contentType }));
    registerLifecycleRoutes(http, lifecycle, { full: documents.full, open: documents.open });
    // Read the gRPC settings (token and key files) before anything listens: a bad file fails fast.
    const grpcOptions = await grpcServerOptions(config);
    let appKeys = grpcOptions.appKeys;
    const issuer = new AppTokenIssuer({
      roots: localDirs,
      layout,
      defaultAppId: config.appId,
      key: () => appKeys?.[0],
      ttlMs: config.grpcAppTokenTtl,
      owns: (appId, namespace) => owners.claim(appId, namespace ?? config.podNamespace ?? ''),
    });
    http.route('POST', '/v1/app-token', async (req) => {
      const q = req.query;
      const result = await issuer.issue({ app: q.get('app'), namespace: q.get('namespace'), executor: q.get('executor'), proof: q.get('proof'), peer: req.raw.socket.remoteAddress ?? '' });
      return result.ok ? { status: 200, body: { token: result.token, expiresAt: result.expiresAt } } : { status: result.status, body: { error: result.error } };
    });
    const httpAddress = await http.listen(config.httpListen.host, config.httpListen.port);
    started.push({ name: 'http', close: () => http.close() });
    logger.info({ http: httpAddress }, 'http listening');

    const grpcServer = await startGrpcServer(
      {
        lookup: writeback,
        store,
        layout: config.fallbackLayout,
        metrics,
        logger: logger.child({ component: 'grpc' }),
        // GetStatus, WatchStatus and Drain answer from the lifecycle.
        lifecycle: lifecycleView(lifecycle, () => writeback.status().failedFiles + watcher.problems().length),
        servesApp,
      },
      grpcOptions,
    );
    started.push({ name: 'grpc', close: () => grpcServer.close(config.grpcCloseTimeout * 1000) });
    grpcBufferedBytes = () => grpcServer.bufferedBytes();
    if (config.grpcTokenFile !== undefined && grpcOptions.token !== undefined) {
      const tokenFile = new TokenFile({
        path: config.grpcTokenFile,
        initial: grpcOptions.token,
        onChange: (token) => grpcServer.rotateToken(token),
        intervalMs: config.grpcTokenReloadInterval * 1000,
        logger: logger.child({ component: 'grpc' }),
      });
      tokenFile.start();
      started.push({ name: 'grpc-token-file', close: async () => tokenFile.close() });
    }
    if (config.grpcAppKeyFile !== undefined && appKeys !== undefined) {
      const keyFile = new TokenFile({
        path: config.grpcAppKeyFile,
        initial: appKeys.map((k) => k.toString('utf8')).join('\n'),
        onChange: (content) => {
          const next = appKeysFromFile(Buffer.from(content, 'utf8'));
          if (typeof next === 'string') {
            logger.warn({ file: config.grpcAppKeyFile, problem: next }, 'per-app key file unusable; keeping the current keys');
            return;
          }
          appKeys = next;
          grpcServer.rotateAppKeys(next);
        },
        intervalMs: config.grpcTokenReloadInterval * 1000,
        logger: logger.child({ component: 'grpc-app-key' }),
        changedMessage: 'per-app key file changed: new tokens are signed with its first key, tokens under any of its keys are accepted',
      });
      keyFile.start();
      started.push({ name: 'grpc-app-key-file', close: async () => keyFile.close() });
    }
    logger.info({ grpc: { host: config.grpcListen.host, port: grpcServer.port } }, 'grpc listening');

    started.push({ name: 'watcher', close: () => watcher.close() });
    // Writing competes with the start-up scan for the disk and the thread pool: scan first
    // (measured: 100,000 files in 13.4 s with both at once).
    writeback.pause();
    await watcher.start();
    writeback.resume();
    // Refused (and logged) when a notice during the scan already started a drain.
    state.transition('serving', 'initial scan done');
    const fileEvents = watcher.fileEvents();
    logger.info({ backend: fileEvents.backend, ...(inotifywait === undefined ? {} : { inotifywait }) }, fileEvents.backend === 'inotifywait' ? 'file events: inotifywait (writes and scratch files filtered before the agent)' : 'file events: fs.watch (every write to a watched directory wakes the agent; install inotify-tools to avoid it)');
    logger.info({ outputs: watcher.outputs().length, pending: writeback.status().pendingOutputs }, 'initial scan done');

    return { state, writeback, watcher, http: httpAddress, lifecycle, metrics, exitRequested: lifecycle.exitRequested, status: documents.full, close };
  } catch (err) {
    await close();
    throw err;
  }
}
