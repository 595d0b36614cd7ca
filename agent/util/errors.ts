/** The errno-style code of an error, or a fallback. */
export function errorCode(err: unknown, fallback = 'EUNKNOWN'): string {
  const code = (err as { code?: unknown } | null | undefined)?.code;
  return typeof code === 'string' ? code : fallback;
}

/** A one-line description of an error and its causes, for logs and status. */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let depth = 0; current !== undefined && current !== null && depth < 4; depth++) {
    parts.push(current instanceof Error ? current.message : String(current));
    current = current instanceof Error ? current.cause : undefined;
  }
  return parts.join(': ');
}

/**
 * A setting that is wrong: a bad flag or value, or a file a setting names that cannot be read.
 * `key` names the setting (its option-table key). The CLI turns it into exit code 2 and one line.
 */
export class ConfigError extends Error {
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}
