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

/** Checks `authorization: Bearer <token>` in constant time (digests of equal length are compared). */
export class TokenCheck {
  private readonly digest: Buffer;

  constructor(token: string) {
    if (token === '') throw new Error('the gRPC token is empty');
    this.digest = sha256(token);
  }

  /** Throws UNAUTHENTICATED unless the `authorization` header (exactly one) carries the token. */
  verify(authorization: string | string[] | undefined): void {
    const value = typeof authorization === 'string' ? authorization : undefined;
    const m = typeof value === 'string' ? /^Bearer\s+(.+)$/i.exec(value) : null;
    // Compare even when the header is malformed, so timing does not tell which check failed.
    const ok = timingSafeEqual(sha256(m?.[1] ?? ''), this.digest) && m !== null;
    if (!ok) throw new ServeError(status.UNAUTHENTICATED, 'missing or wrong bearer token');
  }
}

function sha256(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** A token file's content: surrounding whitespace (the trailing newline of `echo`) is not part of it. */
export function tokenFromFile(content: string): string {
  return content.trim();
}
