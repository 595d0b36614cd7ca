/** Errors that end an RPC with a chosen gRPC status. */
import { status } from '@grpc/grpc-js';

export class ServeError extends Error {
  constructor(
    readonly code: status,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ServeError';
  }
}

export const invalid = (message: string): ServeError => new ServeError(status.INVALID_ARGUMENT, message);
export const notFound = (message: string): ServeError => new ServeError(status.NOT_FOUND, message);
export const unavailable = (message: string, cause?: unknown): ServeError => new ServeError(status.UNAVAILABLE, message, { cause });

/** `NOT_FOUND` for `status.NOT_FOUND`: the label used in metrics. */
export function statusName(code: status): string {
  return status[code] ?? String(code);
}
