/**
 * The rules both S3 clients (the SDK and S3Putter) share: which errors are worth retrying, what a
 * not-found looks like, and when an ETag can be compared with the MD5 sent.
 */
import { StoreError } from '../block-store.js';

/** Response fields that say how S3 encrypted an object. */
interface EncryptionAnswer {
  ServerSideEncryption?: string | undefined;
  SSECustomerAlgorithm?: string | undefined;
}

/**
 * Whether an answer's ETag can be compared with an MD5 at all. AWS: objects encrypted with SSE-KMS
 * (`x-amz-server-side-encryption: aws:kms` or `aws:kms:dsse`) or SSE-C
 * (`x-amz-server-side-encryption-customer-algorithm`) get ETags that are not the MD5 of their
 * data, though they look like one (32 hex digits). Their integrity rests on Content-MD5, which S3
 * verifies before it stores anything (400 BadDigest otherwise). SSE-S3 (AES256) keeps MD5 ETags.
 */
export function etagComparable(answer: EncryptionAnswer): boolean {
  const sse = answer.ServerSideEncryption?.toLowerCase();
  if (sse !== undefined && sse.startsWith('aws:kms')) return false;
  return answer.SSECustomerAlgorithm === undefined || answer.SSECustomerAlgorithm === '';
}

/** Whether the server's ETag is the MD5 we sent. Servers with their own ETag scheme answer
 * something that is not a plain MD5: those are not comparable and pass. */
export function etagMatches(etag: string | undefined, expected: string): boolean {
  const got = etag?.replace(/"/g, '').toLowerCase();
  if (!got || !/^[0-9a-f]{32}(-\d+)?$/.test(got)) return true;
  return got === expected;
}

export function etagError(what: string, etag: string | undefined, expected: string): StoreError {
  return new StoreError(`upload ${what}: server stored ETag ${etag}, expected ${expected}`, 'transient', 'ETagMismatch');
}

interface SdkError {
  name?: string;
  Code?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

export function isNotFound(err: unknown): boolean {
  const e = err as SdkError | undefined;
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.Code === 'NoSuchKey' || (e?.$metadata?.httpStatusCode === 404 && e?.name !== 'NoSuchBucket' && e?.Code !== 'NoSuchBucket' && e?.name !== 'NoSuchUpload');
}

const PERMANENT_CODES = new Set([
  'AccessDenied',
  'AllAccessDisabled',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'NoSuchBucket',
  'InvalidBucketName',
  'AccountProblem',
  'InvalidSecurity',
  'InvalidToken',
  'ExpiredToken',
  'CredentialsProviderError',
  'NotImplemented',
  'MethodNotAllowed',
  'EntityTooLarge',
  'InvalidArgument',
]);
const TRANSIENT_CODES = new Set([
  'SlowDown',
  'ServiceUnavailable',
  'InternalError',
  'RequestTimeout',
  'RequestTimeTooSkewed',
  'TimeoutError',
  'ThrottlingException',
  'Throttling',
  'TooManyRequests',
  // Our own body did not match the digest sent: re-read and try again.
  'BadDigest',
  'XAmzContentSHA256Mismatch',
  'IncompleteBody',
  'NoSuchUpload',
  'ETagMismatch',
]);
const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED', 'UND_ERR_SOCKET']);

/** Map any error from an S3 call to a StoreError whose kind decides retrying. */
export function classify(op: string, key: string, err: unknown): StoreError {
  if (err instanceof StoreError) return err;
  const e = (err ?? {}) as SdkError;
  const status = e.$metadata?.httpStatusCode;
  const code = e.Code ?? (e.name && e.name !== 'Error' ? e.name : undefined) ?? e.code ?? (status ? `HTTP${status}` : 'EUNKNOWN');
  const netCode = typeof e.code === 'string' ? e.code : undefined;
  let kind: 'transient' | 'permanent';
  if (TRANSIENT_CODES.has(code) || (netCode && NETWORK_CODES.has(netCode)) || NETWORK_CODES.has(code)) kind = 'transient';
  else if (PERMANENT_CODES.has(code) || status === 403 || status === 401) kind = 'permanent';
  else if (status !== undefined && (status >= 500 || status === 429 || status === 408)) kind = 'transient';
  else if (status !== undefined && status >= 400) kind = 'permanent';
  // No HTTP status: the request never got an answer (socket closed, aborted, timed out).
  else kind = 'transient';
  const label = netCode && netCode !== code ? `${code}/${netCode}` : code;
  return new StoreError(`s3 ${op} ${key}: ${label}${status ? ` (HTTP ${status})` : ''}: ${e.message ?? String(err)}`, kind, code, { cause: err });
}
