/** Bearer-token check and TLS files of the gRPC server. */
import { createHash, timingSafeEqual } from 'node:crypto';
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
