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

export const permissionDenied = (message: string): ServeError => new ServeError(status.PERMISSION_DENIED, message);

/** Longest piece of client input quoted back in a status message. */
export const MAX_ECHO_CHARS = 64;
/** Longest status message sent: `grpc-message` is a header, and clients cap their metadata (C-core: 8 KiB). */
export const MAX_STATUS_MESSAGE_CHARS = 512;

/**
 * Client input quoted in an error, JSON-quoted and cut to `max` characters (with the original
 * length when cut): a 10 kB app id must not come back as a 10 kB header.
 */
export function echo(value: unknown, max = MAX_ECHO_CHARS): string {
  const text = typeof value === 'string' ? value : String(value);
  if (text.length <= max) return JSON.stringify(text);
  return `${JSON.stringify(text.slice(0, max))}... (${text.length} chars)`;
}

/** Like `echo`, unquoted: for values that are numbers, or should be. */
export function clip(value: unknown, max = MAX_ECHO_CHARS): string {
  const text = String(value);
  return text.length <= max ? text : `${text.slice(0, max)}... (${text.length} chars)`;
}

/** A status message cut to what a client's metadata limit takes. */
export function boundedStatusMessage(message: string, max = MAX_STATUS_MESSAGE_CHARS): string {
  return message.length <= max ? message : `${message.slice(0, max - 3)}...`;
}
