/**
 * A BlockStore on any S3 protocol server (AWS S3, MinIO, Ceph RGW, Swift s3api), with
 * @aws-sdk/client-s3.
 *
 * Integrity: every body carries `Content-MD5`, so the server refuses bytes damaged on the way
 * (400 BadDigest), and the ETag it answers is compared with the MD5 we sent, which catches a
 * server that stored something else even when it verifies nothing itself (s3rver) — except for
 * SSE-KMS and SSE-C answers, whose ETags are not MD5s (`etagComparable`). A mismatch never deletes
 * the key (it may hold Spark's own copy by then); the retry overwrites it. A digest of
 * the whole file is kept in object metadata for `holds()` after a restart and for `verify`:
 * - a file up to 16 MiB (`maxBufferedFile`) is read once into a buffer, hashed (MD5), and sent in
 *   one PutObject; its MD5 is the digest (`x-amz-meta-md5`, also its ETag). One read and one hash
 *   pass per byte: the least CPU an upload with a verified digest can cost.
 * - a larger file up to the multipart threshold (64 MiB) is read once for its MD5, then streamed.
 * - a file above the threshold goes in a multipart upload: it is read once first to compute its SHA-256 (`x-amz-meta-sha256`, which must be
 *   set when the multipart upload is created) and each part's MD5; each part is then read into a
 *   buffer again (from the page cache) and sent with that MD5. Two reads and two hash passes
 *   (SHA-256 and MD5) per byte.
 * Buffers in flight are bounded by a byte budget (`maxBufferedBytes`) and reused (BufferPool), so
 * memory stays flat. The payload is sent as UNSIGNED-PAYLOAD: Content-MD5 already protects it, and
 * hashing it again for the signature would cost both sides a SHA-256 pass. PutObject and
 * UploadPart go through S3Putter (s3-put.ts), a signed PUT without the SDK's per-request cost;
 * every other operation through the SDK.
 *
 * Failures: each request has an idle-socket timeout and a few quick retries of its own for
 * transient errors; what still fails is thrown as a StoreError whose kind tells the write-back
 * queue whether to keep retrying. A failed multipart upload is aborted. Uploads that a killed
 * process left behind for a key are aborted the next time that key is written (and uploads older
 * than a given age under the prefix by `abortStaleUploads`, called at open), so none stays orphaned.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  HeadBucketCommand,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { Logger } from 'pino';
import type { BlockStore, LocalFile, PutOptions, ReadHandle, StoredObject, StoreProbe } from '../block-store.js';
import { NotFoundError, StoreError } from '../block-store.js';
import { localReadError } from '../local-file.js';
import { S3Putter } from './s3-put.js';
import { openS3Target, type S3Target } from './s3-target.js';
import { BufferPool } from '../../util/buffer-pool.js';
import { ByteBudget } from '../../util/byte-budget.js';
import { Limiter } from '../../util/limiter.js';
import { TokenBucket } from '../../util/token-bucket.js';
import { backoffDelay, sleep } from '../../util/backoff.js';
import type { S3ChecksumMode } from './s3-checksums.js';
import { classify, etagComparable, etagError, etagMatches, isNotFound } from './s3-errors.js';

export type { S3ChecksumMode } from './s3-checksums.js';

/** What the store reports to metrics (low cardinality: `op` is an S3 operation name). */
export interface S3StoreMetrics {
  /** One finished request: outcome `ok`, or the StoreError kind it failed with. */
  request(op: string, outcome: string): void;
  /** A request about to be retried, with the error code that caused it. */
  retry(op: string, reason: string): void;
  /** Body bytes sent (counted as they leave, parts retried included). */
  bytesUploaded(bytes: number): void;
}

export interface S3StoreOptions {
  bucket: string;
  /** Key prefix without leading or trailing slash; '' for the bucket root. */
  prefix?: string;
  /** Custom endpoint (MinIO, Ceph, Swift, tests); AWS's own when unset. */
  endpoint?: string;
  region?: string;
  forcePathStyle?: boolean;
  /** Static credentials (tests); the SDK's default chain (env, IRSA, instance profile) when unset. */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** `when_required` for servers that refuse aws-chunked bodies or flexible checksums (s3rver, Swift, older MinIO/Ceph). */
  checksums?: S3ChecksumMode;
  /** Files up to this size go in one PutObject; larger ones in a multipart upload. */
  multipartThreshold?: number;
  partSize?: number;
  /** Parts of one upload sent at once. */
  partConcurrency?: number;
  /** Requests with a body in flight at once, across all uploads. */
  maxConcurrentRequests?: number;
  /** Bytes of file content held in memory for sending at once (default 64 MiB, at least two bodies). */
  maxBufferedBytes?: number;
  /** Single-PUT files up to this size are sent from one buffered read; larger ones are streamed (two reads). Default 16 MiB. */
  maxBufferedFile?: number;
  /** Bytes per second for all uploads together; 0 = unlimited. */
  maxUploadBandwidth?: number;
  /** A request whose socket sees no traffic this long fails (transient) and is retried. */
  requestTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** Attempts per request before the error goes to the caller (who retries the whole file later). */
  requestAttempts?: number;
  /** Servers with a lower part-count limit (Swift: 1000). Part size grows to fit. */
  maxParts?: number;
  /** Keys per ListObjectsV2 page (server default 1000); small in tests to exercise paging. */
  listPageSize?: number;
  logger?: Logger;
  metrics?: S3StoreMetrics;
}

const MiB = 1024 * 1024;
const SHA256_META = 'sha256';
const MD5_META = 'md5';
const CHUNK = MiB;

/** Digests of a local file for a multipart upload, from one read: whole-file SHA-256 and MD5 per part. */
interface FileDigests {
  sha256: string;
  partMd5: Buffer[];
  partSize: number;
}

export class S3Store implements BlockStore, StoreProbe {
  readonly url: string;
  readonly bucket: string;
  readonly prefix: string;
  private readonly target: S3Target;
  private readonly client: S3Client;
  /** PutObject and UploadPart, signed and sent without the SDK's per-request overhead. */
  private readonly putter: S3Putter;
  private readonly requests: Limiter;
  /** Bytes of local files buffered for sending at once. */
  private readonly memory: ByteBudget;
  /** The buffers those bytes are read into, reused; the budget counts their class size. */
  private readonly pool: BufferPool;
  /** Files up to this size are read into memory and sent from there; larger ones are streamed. */
  private readonly bufferLimit: number;
  private readonly bucketRate: TokenBucket;
  private readonly opts: Required<
    Pick<S3StoreOptions, 'multipartThreshold' | 'partSize' | 'partConcurrency' | 'requestAttempts' | 'maxParts' | 'requestTimeoutMs'>
  >;
  private readonly logger: Logger | undefined;
  private readonly metrics: S3StoreMetrics | undefined;
  /** Multipart uploads this process started and has not finished: never treated as stale. */
  private readonly ownUploads = new Set<string>();
  private closed: Promise<void> | undefined;
  private cannotListUploads = false;
  /** The server answered 501 to `If-None-Match: *` (Swift's s3api): create after a lookup only. */
  private noConditionalPuts = false;
  private readonly listPageSize: number | undefined;

  constructor(options: S3StoreOptions) {
    this.bucket = options.bucket;
    this.prefix = (options.prefix ?? '').replace(/^\/+|\/+$/g, '');
    this.url = `s3://${this.bucket}${this.prefix ? `/${this.prefix}` : ''}`;
    this.opts = {
      multipartThreshold: options.multipartThreshold ?? 64 * MiB,
      partSize: options.partSize ?? 16 * MiB,
      partConcurrency: options.partConcurrency ?? 4,
      requestAttempts: options.requestAttempts ?? 3,
      maxParts: options.maxParts ?? 1000,
      requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
    };
    if (this.opts.partSize < 5 * MiB) throw new RangeError(`part size ${this.opts.partSize} is below S3's 5 MiB minimum`);
    this.requests = new Limiter(options.maxConcurrentRequests ?? 8);
    this.bufferLimit = Math.min(this.opts.multipartThreshold, options.maxBufferedFile ?? 16 * MiB);
    this.memory = new ByteBudget(options.maxBufferedBytes ?? Math.max(64 * MiB, 2 * Math.max(this.bufferLimit, this.opts.partSize)));
    // Below 64 KiB a fresh buffer is cheap; files of 1 MiB and more share one class (the largest
    // buffered body). Nothing given back is dropped: the budget, counted in class sizes, bounds
    // what is allocated, and a dropped buffer would be garbage V8 frees late.
    this.pool = new BufferPool(64 * 1024, MiB, Math.max(this.bufferLimit, this.opts.partSize), this.memory.limit);
    this.bucketRate = new TokenBucket(options.maxUploadBandwidth ?? 0);
    this.logger = options.logger;
    this.listPageSize = options.listPageSize;
    this.metrics = options.metrics;
    // One resolution of endpoint, region, path style and timeouts for the SDK's requests and the
    // putter's, and one keep-alive pool.
    this.target = openS3Target({
      bucket: this.bucket,
      endpoint: options.endpoint,
      region: options.region,
      forcePathStyle: options.forcePathStyle,
      credentials: options.credentials,
      checksums: options.checksums,
      requestTimeoutMs: this.opts.requestTimeoutMs,
      connectTimeoutMs: options.connectTimeoutMs ?? 5000,
      maxSockets: Math.max(16, (options.maxConcurrentRequests ?? 8) * 2),
      logger: options.logger,
    });
    this.client = this.target.client;
    this.putter = new S3Putter({
      endpoint: () => this.target.putEndpoint(),
      // The SDK's resolved provider: the default chain (env, IRSA, instance profile), cached and refreshed.
      credentials: () => this.client.config.credentials(),
      agentFor: (protocol) => this.target.agentFor(protocol),
      connectTimeoutMs: options.connectTimeoutMs ?? 5000,
      socketTimeoutMs: this.opts.requestTimeoutMs,
    });
    // Swift (and S3 itself) require Content-MD5 on DeleteObjects; SDK v3 stopped sending it.
    this.client.middlewareStack.add(
      (next, context) => async (args) => {
        const request = args.request as { headers?: Record<string, string>; body?: unknown };
        if (context.commandName === 'DeleteObjectsCommand' && request.headers && typeof request.body === 'string') {
          const hasMd5 = Object.keys(request.headers).some((h) => h.toLowerCase() === 'content-md5');
          if (!hasMd5) request.headers['content-md5'] = createHash('md5').update(request.body).digest('base64');
        }
        return next(args);
      },
      { step: 'build', name: 'shuffleAgentHeaders', override: true },
    );
  }

  /** Change the upload bandwidth ceiling (bytes/s, 0 = unlimited); the drain lifts it. */
  setBandwidthLimit(bytesPerSecond: number): void {
    this.bucketRate.setRate(bytesPerSecond);
  }

  get bandwidthLimit(): number {
    return this.bucketRate.bytesPerSecond;
  }

  /** The full object key of a store key. */
  objectKey(key: string): string {
    if (key.startsWith('/') || key.split('/').some((p) => p === '..' || p === '.' || p === '')) {
      throw new RangeError(`key ${JSON.stringify(key)} is not a relative object key`);
    }
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  async put(key: string, file: LocalFile, options: PutOptions = {}): Promise<StoredObject> {
    const objectKey = this.objectKey(key);
    if (file.size > this.opts.multipartThreshold) {
      const partSize = Math.max(this.opts.partSize, Math.ceil(file.size / this.opts.maxParts / MiB) * MiB);
      const digests = await digestFile(file, partSize);
      await this.putMultipart(key, objectKey, file, digests, options.signal);
      return { key, size: file.size, digest: `sha256:${digests.sha256}` };
    }
    const md5 = file.size <= this.bufferLimit ? await this.putSingle(key, objectKey, file, options.signal) : await this.putStreamed(key, objectKey, file, options.signal);
    return { key, size: file.size, digest: `md5:${md5}` };
  }

  /**
   * One PutObject streamed from the file, for files too large to buffer but below the multipart
   * threshold: a first read computes the MD5 (Content-MD5 must come before the body), a second
   * one streams the body. Memory stays at a few chunks whatever the size.
   */
  private async putStreamed(key: string, objectKey: string, file: LocalFile, signal?: AbortSignal): Promise<string> {
    const md5 = Buffer.from(await hashFile(file, 'md5'), 'hex');
    const hex = md5.toString('hex');
    await this.send('PutObject', key, signal, (s) =>
      this.requests.run(async () => {
        const out = await this.putter.put({
          key: objectKey,
          // One reused chunk buffer: the next chunk is read once the socket has taken the last,
          // so a streamed file leaves no garbage behind (a fresh 1 MiB buffer per chunk did, and
          // V8 frees such memory late). A short file fails the request as source-changed.
          body: (write) =>
            forEachChunk(file, async (chunk) => {
              await this.bucketRate.take(chunk.length);
              await write(chunk);
              this.metrics?.bytesUploaded(chunk.length);
            }),
          contentLength: file.size,
          contentMd5: md5.toString('base64'),
          headers: { 'content-type': 'application/octet-stream', [`x-amz-meta-${MD5_META}`]: hex },
          ...(s ? { signal: s } : {}),
        });
        if (etagComparable(out) && !etagMatches(out.ETag, hex)) {
          await this.removeOwnVersion(key, objectKey, out.VersionId);
          throw etagError(key, out.ETag, hex);
        }
        return out;
      }),
    );
    return hex;
  }

  /**
   * One PutObject from a buffer: the file is read once, its MD5 goes in Content-MD5 (the server
   * verifies it) and in metadata (`x-amz-meta-md5`, also the ETag S3 answers). Buffered, not
   * streamed, so retries do not re-read and no second hash pass is needed; the memory budget
   * bounds how many bytes are buffered at once.
   */
  private async putSingle(key: string, objectKey: string, file: LocalFile, signal?: AbortSignal): Promise<string> {
    return this.memory.run(this.pool.classSize(file.size), async () => {
      const buf = await readRange(file, 0, file.size, this.pool);
      const md5 = createHash('md5').update(buf).digest();
      const hex = md5.toString('hex');
      await this.send('PutObject', key, signal, (s) =>
        this.requests.run(async () => {
          const out = await this.putter.put({
            key: objectKey,
            body: this.body(buf),
            contentLength: buf.length,
            contentMd5: md5.toString('base64'),
            headers: { 'content-type': 'application/octet-stream', [`x-amz-meta-${MD5_META}`]: hex },
            ...(s ? { signal: s } : {}),
          });
          this.metrics?.bytesUploaded(buf.length);
          if (etagComparable(out) && !etagMatches(out.ETag, hex)) {
            // Only a server that verifies nothing gets here (it stored other bytes than we sent).
            await this.removeOwnVersion(key, objectKey, out.VersionId);
            throw etagError(key, out.ETag, hex);
          }
          return out;
        }),
      );
      // Answered: the server has read the whole body, nothing refers to the buffer any more.
      // (After a failure it is left to GC: a destroyed socket may still hold it.)
      this.pool.give(buf);
      return hex;
    });
  }

  private async putMultipart(key: string, objectKey: string, file: LocalFile, d: FileDigests, signal?: AbortSignal): Promise<void> {
    await this.abortLeftovers(key, objectKey);
    const created = await this.send('CreateMultipartUpload', key, signal, (s) =>
      this.client.send(
        new CreateMultipartUploadCommand({
          Bucket: this.bucket,
          Key: objectKey,
          ContentType: 'application/octet-stream',
          Metadata: { [SHA256_META]: d.sha256 },
        }),
        { abortSignal: s },
      ),
    );
    const uploadId = created.UploadId;
    if (!uploadId) throw new StoreError(`upload ${key}: CreateMultipartUpload returned no UploadId`, 'transient', 'NoUploadId');
    this.ownUploads.add(uploadId);
    try {
      const parts: Array<{ PartNumber: number; ETag: string }> = [];
      const count = d.partMd5.length;
      let next = 0;
      let failed = false;
      const worker = async (): Promise<void> => {
        while (!failed && next < count) {
          const index = next++;
          const start = index * d.partSize;
          const end = Math.min(file.size, start + d.partSize);
          const md5 = d.partMd5[index] as Buffer;
          try {
            const out = await this.memory.run(this.pool.classSize(end - start), async () => {
              // Not hashed again: the part goes with the first pass's MD5 as Content-MD5, so bytes
              // that changed since are refused by the server (BadDigest) or, by one that checks
              // nothing, answered with another ETag; both fail the part, and the output is retried.
              const buf = await readRange(file, start, end, this.pool);
              const answer = await this.send('UploadPart', key, signal, (s) =>
                this.requests.run(async () => {
                  const answer = await this.putter.put({
                    key: objectKey,
                    query: { partNumber: String(index + 1), uploadId },
                    body: this.body(buf),
                    contentLength: buf.length,
                    contentMd5: md5.toString('base64'),
                    ...(s ? { signal: s } : {}),
                  });
                  this.metrics?.bytesUploaded(buf.length);
                  if (etagComparable(answer) && !etagMatches(answer.ETag, md5.toString('hex'))) throw etagError(`${key} part ${index + 1}`, answer.ETag, md5.toString('hex'));
                  return answer;
                }),
              );
              this.pool.give(buf);
              return answer;
            });
            parts.push({ PartNumber: index + 1, ETag: out.ETag as string });
          } catch (err) {
            failed = true;
            throw err;
          }
        }
      };
      const results = await Promise.allSettled(Array.from({ length: Math.min(this.opts.partConcurrency, count) }, worker));
      const rejected = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (rejected) throw rejected.reason;
      parts.sort((a, b) => a.PartNumber - b.PartNumber);
      let completedBefore = false;
      const done = await this.send('CompleteMultipartUpload', key, signal, async (s) => {
        try {
          return await this.client.send(
            new CompleteMultipartUploadCommand({ Bucket: this.bucket, Key: objectKey, UploadId: uploadId, MultipartUpload: { Parts: parts } }),
            { abortSignal: s },
          );
        } catch (err) {
          // A retry after an answer lost on the way: the upload is gone because it completed.
          const stored = classify('CompleteMultipartUpload', key, err).code === 'NoSuchUpload' ? await this.stat(key) : undefined;
          if (stored?.size === file.size && stored.digest === `sha256:${d.sha256}`) {
            completedBefore = true;
            return { ETag: undefined as string | undefined, ServerSideEncryption: undefined as string | undefined };
          }
          throw err;
        }
      });
      if (completedBefore) return;
      // S3 and Swift answer the MD5 of the parts' binary MD5s, then `-<count>`; servers with
      // another scheme (s3rver: MD5 of the whole object) are not compared.
      const expected = `${createHash('md5').update(Buffer.concat(d.partMd5)).digest('hex')}-${count}`;
      if (etagComparable(done) && done.ETag?.includes('-') && !etagMatches(done.ETag, expected)) throw etagError(key, done.ETag, expected);
    } catch (err) {
      await this.abortUpload(key, objectKey, uploadId);
      throw err;
    } finally {
      this.ownUploads.delete(uploadId);
    }
  }

  /**
   * After an ETag that proves the server stored other bytes than we sent: remove that copy only if
   * it is provably ours, i.e. the server named the version this PUT created (a versioned bucket).
   * Never an unconditional DeleteObject: between our PUT and the delete, the key may hold what
   * Spark's own decommissioning wrote there. Without a version the retry's PUT replaces it.
   */
  private async removeOwnVersion(key: string, objectKey: string, versionId: string | undefined): Promise<void> {
    if (versionId === undefined || versionId === '' || versionId === 'null') return;
    await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: objectKey, VersionId: versionId })).catch((err: unknown) => {
      this.logger?.warn({ key, versionId, err }, 'could not remove the damaged version this upload created');
    });
  }

  /** Abort multipart uploads for `objectKey` that this process did not start (a killed predecessor's). */
  private async abortLeftovers(key: string, objectKey: string): Promise<void> {
    if (this.cannotListUploads) return;
    try {
      for await (const u of this.listUploads(objectKey)) {
        if (u.key !== objectKey || this.ownUploads.has(u.uploadId)) continue;
        this.logger?.info({ key, uploadId: u.uploadId, initiated: u.initiated }, 'aborting a multipart upload left by an earlier run');
        await this.abortUpload(key, objectKey, u.uploadId);
      }
    } catch (err) {
      if (!(err instanceof StoreError) || err.kind !== 'permanent') throw err;
      // Not implemented (s3rver) or not permitted: uploading still works; leftovers are then for
      // a lifecycle rule (AbortIncompleteMultipartUpload) to remove.
      this.cannotListUploads = true;
      this.logger?.warn({ code: err.code }, 'cannot list multipart uploads; leftovers of crashed uploads are not aborted');
    }
  }

  private async abortUpload(key: string, objectKey: string, uploadId: string): Promise<void> {
    try {
      await this.send('AbortMultipartUpload', key, undefined, (s) =>
        this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: objectKey, UploadId: uploadId }), { abortSignal: s }),
      );
    } catch (err) {
      // Left for abortStaleUploads (or a bucket lifecycle rule); the upload itself already failed.
      this.logger?.warn({ key, uploadId, err }, 'could not abort multipart upload');
    }
  }

  private async *listUploads(keyPrefix: string): AsyncIterable<{ key: string; uploadId: string; initiated?: Date }> {
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    while (true) {
      const page = await this.send('ListMultipartUploads', keyPrefix, undefined, (s) =>
        this.client.send(
          new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: keyPrefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
          { abortSignal: s },
        ),
      );
      for (const u of page.Uploads ?? []) {
        if (u.Key && u.UploadId) yield { key: u.Key, uploadId: u.UploadId, ...(u.Initiated ? { initiated: u.Initiated } : {}) };
      }
      if (!page.IsTruncated || (!page.NextKeyMarker && !page.NextUploadIdMarker)) return;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  /**
   * Abort multipart uploads under the prefix that were initiated more than `olderThanMs` ago and
   * are not this process's. Called at start: many agents may share a prefix, so only uploads too
   * old to be anybody's live upload are touched. Returns how many were aborted.
   */
  async abortStaleUploads(olderThanMs: number, now = Date.now()): Promise<number> {
    let aborted = 0;
    for await (const u of this.listUploads(this.prefix ? `${this.prefix}/` : '')) {
      if (this.ownUploads.has(u.uploadId)) continue;
      if (u.initiated && now - u.initiated.getTime() < olderThanMs) continue;
      await this.abortUpload(u.key, u.key, u.uploadId);
      aborted++;
    }
    return aborted;
  }

  /** Multipart uploads in progress under `prefix` (relative keys), for tests and status. */
  async pendingUploads(prefix = ''): Promise<Array<{ key: string; uploadId: string }>> {
    const out: Array<{ key: string; uploadId: string }> = [];
    const full = this.prefix ? `${this.prefix}/${prefix}` : prefix;
    for await (const u of this.listUploads(full)) out.push({ key: this.relative(u.key), uploadId: u.uploadId });
    return out;
  }

  /** HeadBucket: the bucket exists, the credentials are accepted, and the endpoint answers. */
  async probe(options: { write: boolean; signal?: AbortSignal }): Promise<void> {
    try {
      await this.send('HeadBucket', this.url, options.signal, (s) => this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal: s }));
    } catch (err) {
      if (isNotFound(err)) throw new StoreError(`s3 HeadBucket ${this.url}: no such bucket`, 'permanent', 'NoSuchBucket', { cause: err });
      throw err;
    }
  }

  async holds(key: string, file: LocalFile): Promise<boolean> {
    const existing = await this.stat(key);
    if (!existing || existing.size !== file.size || !existing.digest) return false;
    const [algorithm, expected] = existing.digest.split(':') as [string, string];
    return (await hashFile(file, algorithm)) === expected;
  }

  async stat(key: string): Promise<StoredObject | undefined> {
    const objectKey = this.objectKey(key);
    try {
      const head = await this.send('HeadObject', key, undefined, (s) =>
        this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: objectKey }), { abortSignal: s }),
      );
      const sha = head.Metadata?.[SHA256_META];
      const md5 = head.Metadata?.[MD5_META];
      const digest = sha && /^[0-9a-f]{64}$/.test(sha) ? `sha256:${sha}` : md5 && /^[0-9a-f]{32}$/.test(md5) ? `md5:${md5}` : undefined;
      return { key, size: head.ContentLength ?? 0, ...(digest ? { digest } : {}) };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async read(key: string, range?: { start: number; end: number }, options: PutOptions = {}): Promise<Readable> {
    const objectKey = this.objectKey(key);
    if (range && range.end <= range.start) {
      if (!(await this.stat(key))) throw new NotFoundError(key);
      return Readable.from([]);
    }
    try {
      const out = await this.send('GetObject', key, options.signal, (s) =>
        this.client.send(
          // Always an explicit first-last range: s3rver answers suffix ranges (`bytes=-N`) wrongly.
          new GetObjectCommand({ Bucket: this.bucket, Key: objectKey, ...(range ? { Range: `bytes=${range.start}-${range.end - 1}` } : {}) }),
          { abortSignal: s },
        ),
      );
      if (!(out.Body instanceof Readable)) throw new StoreError(`read ${key}: no body`, 'transient', 'NoBody');
      return out.Body;
    } catch (err) {
      if (isNotFound(err)) throw new NotFoundError(key);
      throw err;
    }
  }

  async *list(prefix: string): AsyncIterable<StoredObject> {
    const full = this.prefix ? `${this.prefix}/${prefix}` : prefix;
    let token: string | undefined;
    do {
      const page = await this.send('ListObjectsV2', prefix, undefined, (s) =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: full, ContinuationToken: token, ...(this.listPageSize ? { MaxKeys: this.listPageSize } : {}) }), { abortSignal: s }),
      );
      for (const o of page.Contents ?? []) if (o.Key) yield { key: this.relative(o.Key), size: o.Size ?? 0, ...(o.LastModified ? { modified: o.LastModified } : {}) };
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(key: string): Promise<void> {
    const objectKey = this.objectKey(key);
    await this.send('DeleteObject', key, undefined, (s) =>
      this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: objectKey }), { abortSignal: s }),
    );
  }

  async createIfAbsent(key: string, body: Buffer): Promise<boolean> {
    // Looked up first: a server that ignores If-None-Match (s3rver) or refuses it (Swift's s3api,
    // 501) then still never overwrites an object that was there before; only creators racing
    // between the lookup and the write can both succeed there.
    if (await this.stat(key)) return false;
    const objectKey = this.objectKey(key);
    const put = (conditional: boolean): Promise<unknown> =>
      this.send('PutObject', key, undefined, (s) =>
        this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: objectKey, Body: body, ContentType: 'text/plain', ...(conditional ? { IfNoneMatch: '*' } : {}) }), { abortSignal: s }),
      );
    try {
      await put(!this.noConditionalPuts);
      return true;
    } catch (err) {
      const status = ((err as StoreError).cause as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
      // 412: the object exists; 409: a concurrent conditional write to the same key won.
      if (status === 412 || status === 409) return false;
      if (status !== 501 || this.noConditionalPuts) throw err;
      this.noConditionalPuts = true;
      this.logger?.warn({ store: this.url }, 'the S3 server does not support conditional PUTs (If-None-Match): owner markers are created after a lookup instead, which racing creators can both pass');
      if (await this.stat(key)) return false;
      await put(false);
      return true;
    }
  }

  /** Delete many keys, 1000 per request (an app's copies at cleanup). Returns how many were deleted. */
  async deleteMany(keys: readonly string[]): Promise<number> {
    let deleted = 0;
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000).map((k) => ({ Key: this.objectKey(k) }));
      const out = await this.send('DeleteObjects', keys[i] as string, undefined, (s) =>
        this.client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch, Quiet: true } }), { abortSignal: s }),
      );
      const errors = out.Errors ?? [];
      if (errors.length > 0) {
        const first = errors[0];
        throw new StoreError(`delete ${errors.length} of ${batch.length} objects failed: ${first?.Code} ${first?.Key}`, 'transient', first?.Code ?? 'DeleteError');
      }
      deleted += batch.length;
    }
    return deleted;
  }

  close(): Promise<void> {
    this.closed ??= Promise.resolve().then(() => {
      this.bucketRate.setRate(0);
      this.target.destroy();
    });
    return this.closed;
  }

  private relative(objectKey: string): string {
    return this.prefix && objectKey.startsWith(`${this.prefix}/`) ? objectKey.slice(this.prefix.length + 1) : objectKey;
  }

  /** A request body: the buffer itself, or 256 KiB slices paced by the bandwidth limiter. */
  private body(buf: Buffer): Buffer | Readable {
    if (this.bucketRate.bytesPerSecond === 0) return buf;
    const slice = 256 * 1024;
    const rate = this.bucketRate;
    return Readable.from(
      (async function* () {
        for (let i = 0; i < buf.length; i += slice) {
          const chunk = buf.subarray(i, Math.min(buf.length, i + slice));
          await rate.take(chunk.length);
          yield chunk;
        }
      })(),
    );
  }

  /**
   * One S3 operation with a few quick retries for transient errors. Every error leaves as a
   * StoreError with a kind (or NotFound, which callers map). `signal` aborts the whole thing.
   */
  private async send<T>(op: string, key: string, signal: AbortSignal | undefined, attempt: (signal: AbortSignal | undefined) => Promise<T>): Promise<T> {
    for (let n = 1; ; n++) {
      try {
        const value = await attempt(signal);
        this.metrics?.request(op, 'ok');
        return value;
      } catch (err) {
        if (isNotFound(err)) {
          this.metrics?.request(op, 'not-found');
          throw err;
        }
        const e = classify(op, key, err);
        this.metrics?.request(op, e.kind);
        if (e.kind !== 'transient' || n >= this.opts.requestAttempts || signal?.aborted || this.closed) throw e;
        this.metrics?.retry(op, e.code);
        this.logger?.debug({ op, key, code: e.code, attempt: n }, 's3 request failed; retrying');
        await sleep(backoffDelay(n, { baseMs: 100, maxMs: 2000 }), signal);
      }
    }
  }
}

/**
 * Read `[start, end)` of a local file into one buffer (through the held handle when there is
 * one). A missing file is source-gone; fewer bytes than committed is source-changed.
 */
async function readRange(file: LocalFile, start: number, end: number, pool: BufferPool): Promise<Buffer> {
  const buf = pool.take(end - start);
  let handle: ReadHandle | undefined;
  try {
    handle = file.handle ?? (await open(file.path, 'r'));
    let filled = 0;
    while (filled < buf.length) {
      const { bytesRead } = await handle.read(buf, filled, buf.length - filled, start + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    if (filled !== buf.length) {
      throw new StoreError(`local file ${file.path} has ${start + filled} bytes, ${file.size} were committed`, 'source-changed', 'ESIZE');
    }
    return buf;
  } catch (err) {
    if (err instanceof StoreError) throw err;
    throw localReadError(file, err);
  } finally {
    if (handle && handle !== file.handle) await handle.close().catch(() => undefined);
  }
}

/**
 * Call `visit` with successive chunks of the whole file, reusing one buffer (no garbage per
 * chunk); an async `visit` is awaited before the buffer is refilled. A StoreError from `visit`
 * passes as is; any other failure is reported as a local read error.
 */
async function forEachChunk(file: LocalFile, visit: (chunk: Buffer) => void | Promise<void>): Promise<void> {
  const buf = Buffer.allocUnsafe(Math.min(CHUNK, Math.max(1, file.size)));
  let handle: ReadHandle | undefined;
  let position = 0;
  try {
    handle = file.handle ?? (await open(file.path, 'r'));
    while (position < file.size) {
      const { bytesRead } = await handle.read(buf, 0, Math.min(buf.length, file.size - position), position);
      if (bytesRead === 0) break;
      await visit(buf.subarray(0, bytesRead));
      position += bytesRead;
    }
  } catch (err) {
    if (err instanceof StoreError) throw err;
    throw localReadError(file, err);
  } finally {
    if (handle && handle !== file.handle) await handle.close().catch(() => undefined);
  }
  if (position !== file.size) {
    throw new StoreError(`local file ${file.path} has ${position} bytes, ${file.size} were committed`, 'source-changed', 'ESIZE');
  }
}

/** Hex digest of a whole local file. */
async function hashFile(file: LocalFile, algorithm: string): Promise<string> {
  const hash = createHash(algorithm);
  await forEachChunk(file, (chunk) => void hash.update(chunk));
  return hash.digest('hex');
}

/** One read of a file: SHA-256 of all of it (metadata) and the MD5 of each `partSize` part (Content-MD5). */
async function digestFile(file: LocalFile, partSize: number): Promise<FileDigests> {
  const sha = createHash('sha256');
  const partMd5: Buffer[] = [];
  let md5 = createHash('md5');
  let inPart = 0;
  await forEachChunk(file, (chunk) => {
    sha.update(chunk);
    let offset = 0;
    while (offset < chunk.length) {
      const take = Math.min(chunk.length - offset, partSize - inPart);
      md5.update(chunk.subarray(offset, offset + take));
      inPart += take;
      offset += take;
      if (inPart === partSize) {
        partMd5.push(md5.digest());
        md5 = createHash('md5');
        inPart = 0;
      }
    }
  });
  if (inPart > 0 || partMd5.length === 0) partMd5.push(md5.digest());
  return { sha256: sha.digest('hex'), partMd5, partSize };
}
