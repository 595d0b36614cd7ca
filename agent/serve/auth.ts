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

/**
 * Prefix of per-app tokens: `sat2:<appId>:<expiry>:<mac>`. The app id in it lets the headers be
 * checked before any body is read. (`sat1:` tokens, which never expired, are no longer accepted.)
 */
export const APP_TOKEN_PREFIX = 'sat2:';
const APP_TOKEN_CONTEXT = 'spark-shuffle-agent app token v2\0';
/** How long an issued per-app token is valid by default: a running executor asks again before. */
export const DEFAULT_APP_TOKEN_TTL_MS = 12 * 3_600_000;

/**
 * The per-app token of `appId` under the cluster key, valid until `expiresAt` (seconds since the
 * epoch): `sat2:<appId>:<expiresAt>:<base64url HMAC-SHA256(key, context || appId || NUL ||
 * expiresAt)>`. Every agent holding the key accepts it until then, so an executor's token works
 * with the agents of other nodes too; it grants that app's outputs and nothing else.
 */
export function appToken(key: Buffer, appId: string, expiresAt: number): string {
  return `${APP_TOKEN_PREFIX}${appId}:${expiresAt}:${appMac(key, appId, expiresAt).toString('base64url')}`;
}

function appMac(key: Buffer, appId: string, expiresAt: number): Buffer {
  return createHmac('sha256', key).update(`${APP_TOKEN_CONTEXT}${appId}\0${expiresAt}`, 'utf8').digest();
}

/**
 * Checks the `authorization` header of a call against the node-wide token and the per-app keys,
 * whichever are configured. With neither, every caller is `open` (the server then must listen
 * where only trusted callers reach it). Several per-app keys: a token signed by any of them is
 * accepted (the overlap of a key rotation); issuers sign with the first.
 */
export class GrpcAccess {
  private appKeys: readonly Buffer[] | undefined;

  constructor(
    private readonly token: TokenCheck | undefined,
    appKeys: readonly Buffer[] | undefined,
    private readonly now: () => number = Date.now,
  ) {
    this.appKeys = appKeys !== undefined && appKeys.length > 0 ? [...appKeys] : undefined;
  }

  get enabled(): boolean {
    return this.token !== undefined || this.appKeys !== undefined;
  }

  /** Swap the per-app keys (re-read from their file). */
  rotateAppKeys(keys: readonly Buffer[]): void {
    if (keys.length === 0) throw new Error('no per-app key');
    this.appKeys = [...keys];
  }

  /** The grant of a call's `authorization` header; UNAUTHENTICATED when it proves nothing. */
  authenticate(authorization: string | string[] | undefined): Grant {
    if (!this.enabled) return { kind: 'open' };
    const value = typeof authorization === 'string' ? authorization : '';
    const bearer = /^Bearer\s+(.+)$/i.exec(value)?.[1] ?? '';
    if (this.appKeys !== undefined && bearer.startsWith(APP_TOKEN_PREFIX)) {
      const m = /^([^:]+):(\d{1,12}):([A-Za-z0-9_-]+)$/.exec(bearer.slice(APP_TOKEN_PREFIX.length));
      const appId = m?.[1] ?? '';
      const expiresAt = Number(m?.[2] ?? '0');
      const given = Buffer.from(m?.[3] ?? '', 'base64url');
      // Every key is tried (constant work per key), so timing does not tell which one matched.
      let valid = false;
      for (const key of this.appKeys) {
        const expected = appMac(key, appId, expiresAt);
        if (given.length === expected.length && timingSafeEqual(given, expected)) valid = true;
      }
      if (m !== null && valid && expiresAt * 1000 > this.now()) return { kind: 'app', appId };
      throw new ServeError(status.UNAUTHENTICATED, m !== null && valid ? 'the per-app token expired: ask for a new one' : 'missing or wrong bearer token');
    }
    if (this.token === undefined) throw new ServeError(status.UNAUTHENTICATED, 'missing or wrong bearer token');
    this.token.verify(authorization);
    return { kind: 'admin' };
  }
}
