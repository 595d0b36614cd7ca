/**
 * The narrow interface every persistent store implements (file system, S3). Keys are relative to
 * the store's root/prefix and always in Spark's FallbackStorage layout (see spark/fallback-key.ts).
 */
import type { Readable } from 'node:stream';

/** A local file to copy. When `handle` is set the bytes are read through it, so they survive the
 * file being unlinked (Spark deletes its `blockmgr-*` tree when an executor stops). The
 * write-back queue always sets it, to a descriptor it opened with the checks of
 * util/safe-file.ts: a store never opens a tenant's path itself. */
export interface LocalFile {
  path: string;
  size: number;
  handle?: ReadHandle;
}

/** What a local file is read through: a `FileHandle`, or store/fd-handle.ts's descriptor. */
export interface ReadHandle {
  readonly fd: number;
  read(buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesRead: number }>;
  close(): Promise<void>;
}

export interface StoredObject {
  key: string;
  size: number;
  /** Digest recorded when the object was written (`sha256:<hex>`), when the store keeps one. */
  digest?: string;
  /** When the object was last written, as the store reports it (set by `list`; gc judges an app's age by it). */
  modified?: Date;
}

export interface PutOptions {
  signal?: AbortSignal;
}

export interface BlockStore {
  /** Human-readable location, e.g. `file:///var/fallback` or `s3://bucket/prefix`, no secrets. */
  readonly url: string;
  /** Copy a local file to `key`, atomically: a reader sees the old object, the new one, or none. */
  put(key: string, file: LocalFile, options?: PutOptions): Promise<StoredObject>;
  /** True when `key` already holds exactly this local file's bytes (skips re-uploads after a restart). */
  holds(key: string, file: LocalFile): Promise<boolean>;
  /** Size (and digest) of `key`, or undefined when absent. */
  stat(key: string): Promise<StoredObject | undefined>;
  /** Bytes `[start, end)` of `key` (the whole object without a range). Rejects with `NotFoundError` when absent. */
  read(key: string, range?: { start: number; end: number }, options?: PutOptions): Promise<Readable>;
  /** Every object whose key starts with `prefix`, with its `modified` time. */
  list(prefix: string): AsyncIterable<StoredObject>;
  delete(key: string): Promise<void>;
  /**
   * Write a small object only if no object is at `key`: true when this call created it, false when
   * one was there. Atomic on the file store (link(2)) and on S3 servers with conditional writes
   * (`If-None-Match: *`: AWS S3 since 2024); a server that ignores the condition still never
   * overwrites an object that existed before the call (it is looked up first), only a concurrent
   * creator can win there.
   */
  createIfAbsent(key: string, body: Buffer): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * Whether a store can be used at all, asked without touching any data: at start, by readiness
 * after failures, and by the store tools before they read. Rejects with a StoreError whose kind
 * says whether waiting may help (`transient`: unreachable, 5xx) or a human must act (`permanent`:
 * no such bucket or directory, credentials refused, no permission).
 */
export interface StoreProbe {
  /** `write`: the agent's own check (a file store's root is created if missing and must be
   * writable); otherwise the store must already exist and be readable. */
  probe(options: { write: boolean; signal?: AbortSignal }): Promise<void>;
}

/** Why a store operation failed, so that the write-back queue can choose to retry. */
export type StoreErrorKind =
  /** Worth retrying as is: network, 5xx, throttling, timeouts, a full disk that may drain. */
  | 'transient'
  /** Will fail until somebody acts: permissions, missing bucket, bad credentials, read-only store. */
  | 'permanent'
  /** The local source went away (Spark cleaned it up). */
  | 'source-gone'
  /** The local source changed while it was copied (size differs from the committed size). */
  | 'source-changed'
  /** The local source can never be copied as it is: a link, not a regular file, or not the file
   * the watcher checked. Not retried: reported and dropped, so a drain does not wait for it. */
  | 'bad-input';

export class StoreError extends Error {
  constructor(
    message: string,
    readonly kind: StoreErrorKind,
    readonly code: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'StoreError';
  }
}

export class NotFoundError extends Error {
  constructor(readonly key: string) {
    super(`no object at ${key}`);
    this.name = 'NotFoundError';
  }
}
