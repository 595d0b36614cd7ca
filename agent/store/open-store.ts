/**
 * Turn `--store` into a BlockStore: `file:./relative` (to the working directory),
 * `file:///absolute`, or `s3://bucket/prefix`. The only place that picks an implementation.
 */
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { BlockStore, StoreProbe } from './block-store.js';
import { FileStore } from './file-store.js';
import type { S3ChecksumMode } from './s3/s3-checksums.js';
import type { S3Store, S3StoreMetrics } from './s3/s3-store.js';

export interface OpenStoreOptions {
  s3Endpoint?: string;
  s3Region?: string;
  s3ForcePathStyle?: boolean;
  s3Checksums?: S3ChecksumMode;
  s3MultipartThreshold?: number;
  s3PartSize?: number;
  s3PartConcurrency?: number;
  s3MaxConcurrentRequests?: number;
  /** Seconds. */
  s3RequestTimeout?: number;
  /** Seconds; uploads under the prefix older than this are aborted at open. 0 = none. */
  s3StaleUploadAge?: number;
  /** Remove temp files of interrupted file-store writes at open (default true). Off for a tool that
   * runs beside live agents (gc): their writes in flight use such files. */
  sweepPartials?: boolean;
  /** Bytes/s, 0 = unlimited. */
  maxUploadBandwidth?: number;
  /** Static credentials (tests, bench); the SDK's default chain when unset. */
  s3Credentials?: { accessKeyId: string; secretAccessKey: string };
  logger?: Logger;
  s3Metrics?: S3StoreMetrics;
}

/** Parse `s3://bucket/prefix` into bucket and prefix (no leading/trailing slash). */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const m = /^s3:\/\/([^/]+)\/?(.*)$/.exec(url);
  if (!m || !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(m[1] as string)) throw new RangeError(`expected s3://bucket/prefix, got ${JSON.stringify(url)}`);
  const prefix = (m[2] as string).replace(/^\/+|\/+$/g, '');
  if (prefix.split('/').some((p) => p === '..' || p === '.')) throw new RangeError(`prefix of ${url} must not contain . or ..`);
  return { bucket: m[1] as string, prefix };
}

/** The S3 flags a store tool (`verify`, `gc`) shares with `run`. */
export interface StoreToolFlags {
  s3Endpoint?: string | undefined;
  s3Region?: string | undefined;
  s3ForcePathStyle: boolean;
  s3Checksums: OpenStoreOptions['s3Checksums'];
  s3RequestTimeout: OpenStoreOptions['s3RequestTimeout'];
}

/**
 * The store for a tool that shares it with running agents: it never aborts their multipart
 * uploads, and never sweeps their temp files unless `sweepPartials` says so.
 */
export function openSharedStore(url: string, flags: StoreToolFlags, extra: Pick<OpenStoreOptions, 'sweepPartials'> = {}): Promise<BlockStore & StoreProbe> {
  return openStore(url, {
    ...(flags.s3Endpoint ? { s3Endpoint: flags.s3Endpoint } : {}),
    ...(flags.s3Region ? { s3Region: flags.s3Region } : {}),
    s3ForcePathStyle: flags.s3ForcePathStyle,
    s3Checksums: flags.s3Checksums,
    s3RequestTimeout: flags.s3RequestTimeout,
    s3StaleUploadAge: 0,
    ...extra,
  });
}

/** Open the store named by `url`. S3 stores start aborting stale multipart uploads at open, in the background (logged, never fatal). */
export async function openStore(url: string, opts: OpenStoreOptions = {}): Promise<BlockStore & StoreProbe> {
  if (url.startsWith('file:')) {
    const path = url.startsWith('file://') ? fileURLToPath(url) : resolve(url.slice('file:'.length));
    const store = new FileStore(path);
    if (opts.sweepPartials === false) return store;
    const swept = await store.sweepPartials();
    if (swept > 0) opts.logger?.info({ removed: swept }, 'removed partial files left by an earlier run');
    return store;
  }
  if (url.startsWith('s3://')) {
    const { bucket, prefix } = parseS3Url(url);
    const { S3Store } = await import('./s3/s3-store.js');
    const store: S3Store = new S3Store({
      bucket,
      prefix,
      ...(opts.s3Endpoint !== undefined ? { endpoint: opts.s3Endpoint } : {}),
      ...(opts.s3Region !== undefined ? { region: opts.s3Region } : {}),
      ...(opts.s3ForcePathStyle !== undefined ? { forcePathStyle: opts.s3ForcePathStyle } : {}),
      ...(opts.s3Checksums !== undefined ? { checksums: opts.s3Checksums } : {}),
      ...(opts.s3MultipartThreshold !== undefined ? { multipartThreshold: opts.s3MultipartThreshold } : {}),
      ...(opts.s3PartSize !== undefined ? { partSize: opts.s3PartSize } : {}),
      ...(opts.s3PartConcurrency !== undefined ? { partConcurrency: opts.s3PartConcurrency } : {}),
      ...(opts.s3MaxConcurrentRequests !== undefined ? { maxConcurrentRequests: opts.s3MaxConcurrentRequests } : {}),
      ...(opts.s3RequestTimeout !== undefined ? { requestTimeoutMs: opts.s3RequestTimeout * 1000 } : {}),
      ...(opts.maxUploadBandwidth !== undefined ? { maxUploadBandwidth: opts.maxUploadBandwidth } : {}),
      ...(opts.s3Credentials ? { credentials: opts.s3Credentials } : {}),
      ...(opts.logger ? { logger: opts.logger } : {}),
      ...(opts.s3Metrics ? { metrics: opts.s3Metrics } : {}),
    });
    const staleAge = opts.s3StaleUploadAge ?? 3600;
    if (staleAge > 0) {
      // In the background: nothing waits for the sweep, and awaiting its list request put a round
      // trip to the store (and the SDK's first request) in front of the agent's start (about
      // 70 ms on Swift's s3api, bench:writeback). It only touches uploads older than `staleAge`,
      // never one this process starts meanwhile.
      store.abortStaleUploads(staleAge * 1000).then(
        (aborted) => {
          if (aborted > 0) opts.logger?.info({ aborted }, 'aborted stale multipart uploads');
        },
        (err: unknown) => {
          // Missing s3:ListBucketMultipartUploads permission or an unreachable server must not stop
          // the agent: writes report their own errors, and a lifecycle rule can clean up instead.
          opts.logger?.warn({ err }, 'could not list stale multipart uploads');
        },
      );
    }
    return store;
  }
  throw new RangeError(`unsupported store ${JSON.stringify(url)}: expected file:PATH or s3://bucket/prefix`);
}

/** A store whose upload bandwidth can be capped and lifted (S3Store); the drain lifts it. */
export interface BandwidthLimited {
  setBandwidthLimit(bytesPerSecond: number): void;
  readonly bandwidthLimit: number;
}

export function isBandwidthLimited(store: BlockStore): store is BlockStore & BandwidthLimited {
  return typeof (store as Partial<BandwidthLimited>).setBandwidthLimit === 'function';
}
