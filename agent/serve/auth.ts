/** Bearer-token check and TLS files of the gRPC server. */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { ServeError } from './errors.js';

export interface TlsFiles {
  /** PEM certificate chain of the server. */
  cert: Buffer;
  /** PEM private key of the server. */
  key: Buffer;
  /** PEM CA bundle: when set, clients must present a certificate it signed (mTLS). */
  clientCa?: Buffer;
}

/** How long the previous token still works after a rotation: clients pick up the new one meanwhile. */
export const TOKEN_OVERLAP_MS = 5 * 60_000;

/**
 * Checks `authorization: Bearer <token>` in constant time (digests of equal length are compared).
 * `rotate` swaps in a new token; the previous one keeps working for `overlapMs`, so executors that
 * read the rotated Secret a little later than the agent are not refused meanwhile.
 */
export class TokenCheck {
  private digest: Buffer;
  private previous: { digest: Buffer; until: number } | undefined;

  constructor(
    token: string,
    private readonly overlapMs = TOKEN_OVERLAP_MS,
    private readonly now: () => number = Date.now,
  ) {
    this.digest = digestOf(token);
  }

  /** Use `token` from now on; the current one stays valid for the overlap. */
  rotate(token: string): void {
    const next = digestOf(token);
    if (timingSafeEqual(next, this.digest)) return;
    this.previous = { digest: this.digest, until: this.now() + this.overlapMs };
    this.digest = next;
  }

  /** Throws UNAUTHENTICATED unless the `authorization` header (exactly one) carries the token. */
  verify(authorization: string | string[] | undefined): void {
    const value = typeof authorization === 'string' ? authorization : undefined;
    const m = typeof value === 'string' ? /^Bearer\s+(.+)$/i.exec(value) : null;
    // Compare even when the header is malformed, so timing does not tell which check failed.
    const given = sha256(m?.[1] ?? '');
    const current = timingSafeEqual(given, this.digest);
    const previous = this.previous !== undefined && timingSafeEqual(given, this.previous.digest) && this.now() < this.previous.until;
    if (m === null || !(current || previous)) throw new ServeError(status.UNAUTHENTICATED, 'missing or wrong bearer token');
  }
}

function digestOf(token: string): Buffer {
  if (token === '') throw new Error('the gRPC token is empty');
  return sha256(token);
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** A token file's content: surrounding whitespace (the trailing newline of `echo`) is not part of it. */
export function tokenFromFile(content: string): string {
  return content.trim();
}

/**
 * What a caller proved at the request headers. `open`: the server has no credential configured
 * (loopback-only deployments, tests); `admin`: the node-wide token (`--grpc-token-file`), every
 * app and the control RPCs; `app`: a per-app token, that app's outputs only.
 */
export type Grant = { kind: 'open' } | { kind: 'admin' } | { kind: 'app'; appId: string };

/** Prefix of per-app tokens: `sat1:<appId>:<mac>`. The app id in it lets the headers be checked before any body is read. */
export const APP_TOKEN_PREFIX = 'sat1:';
const APP_TOKEN_CONTEXT = 'spark-shuffle-agent app token v1\0';

/**
 * The per-app token of `appId` under the cluster key: `sat1:<appId>:<base64url HMAC-SHA256(key,
 * context || appId)>`. Every agent holding the same key accepts it, so an executor's token works
 * with the agents of other nodes too; it grants that app's outputs and nothing else.
 */
export function appToken(key: Buffer, appId: string): string {
  return `${APP_TOKEN_PREFIX}${appId}:${appMac(key, appId).toString('base64url')}`;
}

function appMac(key: Buffer, appId: string): Buffer {
  return createHmac('sha256', key).update(APP_TOKEN_CONTEXT + appId, 'utf8').digest();
}

/**
 * Checks the `authorization` header of a call against the node-wide token and the per-app key,
 * whichever are configured. With neither, every caller is `open` (the server then must listen
 * where only trusted callers reach it).
 */
export class GrpcAccess {
  constructor(
    private readonly token: TokenCheck | undefined,
    private appKey: Buffer | undefined,
  ) {}

  get enabled(): boolean {
    return this.token !== undefined || this.appKey !== undefined;
  }

  /** Swap the per-app key (re-read from its file). */
  rotateAppKey(key: Buffer): void {
    this.appKey = key;
  }

  /** The grant of a call's `authorization` header; UNAUTHENTICATED when it proves nothing. */
  authenticate(authorization: string | string[] | undefined): Grant {
    if (!this.enabled) return { kind: 'open' };
    const value = typeof authorization === 'string' ? authorization : '';
    const bearer = /^Bearer\s+(.+)$/i.exec(value)?.[1] ?? '';
    if (this.appKey !== undefined && bearer.startsWith(APP_TOKEN_PREFIX)) {
      const rest = bearer.slice(APP_TOKEN_PREFIX.length);
      const colon = rest.lastIndexOf(':');
      const appId = colon > 0 ? rest.slice(0, colon) : '';
      const given = Buffer.from(colon > 0 ? rest.slice(colon + 1) : '', 'base64url');
      const expected = appMac(this.appKey, appId);
      if (appId !== '' && given.length === expected.length && timingSafeEqual(given, expected)) return { kind: 'app', appId };
      throw new ServeError(status.UNAUTHENTICATED, 'missing or wrong bearer token');
    }
    if (this.token === undefined) throw new ServeError(status.UNAUTHENTICATED, 'missing or wrong bearer token');
    this.token.verify(authorization);
    return { kind: 'admin' };
  }
}
