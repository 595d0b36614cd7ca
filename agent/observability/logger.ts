/**
 * JSON logs with pino, one line per event, to stdout; nothing else is written there or to stderr
 * while the agent runs (Node's process warnings, the AWS SDK's among them, become log lines).
 *
 * Repeated warnings and errors are rate-limited: the first of a kind (message plus error code)
 * in a window is logged, the rest are counted, and the count is logged once the window ends
 * (`repeated`, `windowSeconds`), so a store that is down for a minute costs a few lines per
 * distinct error, not one per retry.
 */
import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger };

export interface LoggerSettings {
  /** Window of the repeat limit, ms (default 60 s); 0 logs every line. */
  repeatWindowMs?: number;
  /** Environment the pod, node and executor fields are read from (`POD_NAME`, `NODE_NAME`, `SPARK_EXECUTOR_ID`). */
  env?: NodeJS.ProcessEnv;
}

/** The fields every line carries: where it comes from, as the manifests set them. */
export function baseFields(env: NodeJS.ProcessEnv): Record<string, string | number> {
  const fields: Record<string, string | number> = { pid: process.pid };
  const from: Array<[string, string]> = [
    ['pod', 'POD_NAME'],
    ['namespace', 'POD_NAMESPACE'],
    ['node', 'NODE_NAME'],
    ['executor', 'SPARK_EXECUTOR_ID'],
  ];
  for (const [field, name] of from) {
    const v = env[name];
    if (v !== undefined && v !== '') fields[field] = v.slice(0, 253);
  }
  return fields;
}

interface ErrorLike {
  name?: unknown;
  message?: unknown;
  code?: unknown;
  kind?: unknown;
  stack?: unknown;
  cause?: unknown;
  $metadata?: { httpStatusCode?: unknown };
}

/** Errors the agent expects (a store down, a bad input): their stack says nothing. */
const OPERATIONAL = new Set(['StoreError', 'NotFoundError', 'ConfigError', 'AbortError', 'TimeoutError']);

/**
 * `err` as an object: type, message, code, kind, HTTP status, and the causes whose message is not
 * already part of their parent's (the S3 errors repeat their cause's); a stack only for what the
 * agent did not expect.
 */
export function serializeError(err: unknown, depth = 0): Record<string, unknown> {
  if (!(err instanceof Error) && (typeof err !== 'object' || err === null)) return { message: String(err) };
  const e = err as ErrorLike;
  const type = typeof e.name === 'string' ? e.name : 'Error';
  const message = typeof e.message === 'string' ? e.message : String(err);
  const out: Record<string, unknown> = { type, message };
  if (typeof e.code === 'string' || typeof e.code === 'number') out.code = e.code;
  if (typeof e.kind === 'string') out.kind = e.kind;
  if (typeof e.$metadata?.httpStatusCode === 'number') out.status = e.$metadata.httpStatusCode;
  if (!OPERATIONAL.has(type) && typeof e.stack === 'string') out.stack = e.stack;
  if (e.cause !== undefined && depth < 3) {
    const cause = serializeError(e.cause, depth + 1);
    if (!(typeof cause.message === 'string' && message.includes(cause.message))) out.cause = cause;
    else if (cause.code !== undefined && out.code === undefined) out.code = cause.code;
  }
  return out;
}

/** Counts repeats of a key within a window; `take` says whether to log, and how many were held back. */
export class RepeatLimiter {
  private readonly seen = new Map<string, { since: number; suppressed: number }>();

  constructor(
    private readonly windowMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** `log`: the first in its window. Otherwise counted, to be reported by `expired`. */
  take(key: string): boolean {
    const t = this.now();
    const entry = this.seen.get(key);
    if (entry && t - entry.since < this.windowMs) {
      entry.suppressed++;
      return false;
    }
    this.seen.set(key, { since: t, suppressed: 0 });
    return true;
  }

  /** Keys whose window ended, with what they held back (those with none are forgotten). */
  expired(): Array<{ key: string; suppressed: number }> {
    const t = this.now();
    const out: Array<{ key: string; suppressed: number }> = [];
    for (const [key, entry] of this.seen) {
      if (t - entry.since < this.windowMs) continue;
      if (entry.suppressed > 0) out.push({ key, suppressed: entry.suppressed });
      this.seen.delete(key);
    }
    return out;
  }
}

const WARN = 40;

/** The key of a line for the repeat limit: its message and the code of its error, if any. */
function repeatKey(args: unknown[]): string | undefined {
  const [first, second] = args;
  const msg = typeof first === 'string' ? first : typeof second === 'string' ? second : undefined;
  if (msg === undefined) return undefined;
  const obj = typeof first === 'object' && first !== null ? (first as Record<string, unknown>) : {};
  const err = obj.err as ErrorLike | undefined;
  const code = obj.code ?? err?.code ?? obj.kind ?? '';
  return `${msg}\u0000${String(code)}`;
}

export function createLogger(level: string, destination?: NodeJS.WritableStream, settings: LoggerSettings = {}): Logger {
  const windowMs = settings.repeatWindowMs ?? 60_000;
  const limiter = new RepeatLimiter(windowMs);
  const options: LoggerOptions = {
    name: 'shuffle-agent',
    level,
    base: baseFields(settings.env ?? process.env),
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    serializers: { err: serializeError },
    hooks: {
      logMethod(args, method, levelValue) {
        if (windowMs > 0 && levelValue >= WARN) {
          const key = repeatKey(args);
          if (key !== undefined && !limiter.take(key)) return;
        }
        method.apply(this, args);
      },
    },
  };
  const logger = pino(options, destination ?? pino.destination({ fd: 1, sync: false }));
  if (windowMs > 0) {
    // Held-back repeats are reported when their window ends, even if the error stopped.
    const timer = setInterval(() => {
      for (const { key, suppressed } of limiter.expired()) {
        const [msg, code] = key.split('\u0000') as [string, string];
        logger.info({ repeated: suppressed, windowSeconds: windowMs / 1000, ...(code !== '' ? { code } : {}) }, `${msg} (repeated)`);
      }
    }, Math.max(1000, windowMs / 4));
    timer.unref();
  }
  return logger;
}

/**
 * Node's process warnings (deprecations, the AWS SDK's Node-version notice) as log lines instead
 * of free text on stderr. Replaces Node's own printer.
 */
export function logProcessWarnings(logger: Logger): void {
  process.removeAllListeners('warning');
  process.on('warning', (warning) => logger.warn({ warning: { name: warning.name, message: warning.message, ...((warning as { code?: string }).code ? { code: (warning as { code?: string }).code } : {}) } }, 'process warning'));
}

/** A logger that writes nothing, for tests and library use. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
