/** Metrics facades that record what they are told, for assertions. */
import type { S3StoreMetrics } from '../../agent/store/s3/s3-store.js';
import type { WritebackMetrics } from '../../agent/writeback/writeback-queue.js';

export class RecordingS3Metrics implements S3StoreMetrics {
  readonly requests = new Map<string, number>();
  readonly retries = new Map<string, number>();
  uploaded = 0;
  request(op: string, outcome: string): void {
    const k = `${op}:${outcome}`;
    this.requests.set(k, (this.requests.get(k) ?? 0) + 1);
  }
  retry(op: string, reason: string): void {
    const k = `${op}:${reason}`;
    this.retries.set(k, (this.retries.get(k) ?? 0) + 1);
  }
  bytesUploaded(n: number): void {
    this.uploaded += n;
  }
  /** Requests that ended with `outcome` (any op). */
  outcomes(outcome: string): number {
    let n = 0;
    for (const [k, v] of this.requests) if (k.endsWith(`:${outcome}`)) n += v;
    return n;
  }
  get totalRetries(): number {
    let n = 0;
    for (const v of this.retries.values()) n += v;
    return n;
  }
}

export class RecordingWritebackMetrics implements WritebackMetrics {
  persistedFiles = 0;
  persistedOutputs = 0;
  writeErrors = new Map<string, number>();
  droppedOutputs = 0;
  skipped = 0;
  filePersisted(): void {
    this.persistedFiles++;
  }
  outputPersisted(): void {
    this.persistedOutputs++;
  }
  writeError(kind: string): void {
    this.writeErrors.set(kind, (this.writeErrors.get(kind) ?? 0) + 1);
  }
  dropped(): void {
    this.droppedOutputs++;
  }
  skippedAlreadyStored(files: number): void {
    this.skipped += files;
  }
}
