/**
 * Re-reads `--grpc-token-file` so that a rotated token takes effect without a restart. A Kubernetes
 * Secret mounted as a volume is updated in place (an atomic symlink swap) about a minute after the
 * Secret changes; polling the file's content catches that and any other way of replacing it.
 */
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { describeError } from '../util/errors.js';
import { tokenFromFile } from './auth.js';

export interface TokenFileOptions {
  path: string;
  /** The token the agent started with. */
  initial: string;
  /** Called with each new, non-empty token. */
  onChange: (token: string) => void;
  intervalMs?: number;
  logger?: Pick<Logger, 'info' | 'warn'>;
  /** Logged when the content changed (default: the bearer-token message). */
  changedMessage?: string;
}

export class TokenFile {
  private current: string;
  private timer: NodeJS.Timeout | undefined;
  private reading: Promise<void> | undefined;
  /** The last problem logged, so a file that stays broken is reported once, not every poll. */
  private problem: string | undefined;

  constructor(private readonly options: TokenFileOptions) {
    this.current = options.initial;
  }

  start(): void {
    this.timer = setInterval(() => void this.check(), this.options.intervalMs ?? 10_000);
    this.timer.unref();
  }

  /** Read the file now; resolves once done (a read already running is awaited instead). */
  check(): Promise<void> {
    this.reading ??= this.read().finally(() => (this.reading = undefined));
    return this.reading;
  }

  close(): void {
    clearInterval(this.timer);
  }

  private async read(): Promise<void> {
    let token: string;
    try {
      token = tokenFromFile(await readFile(this.options.path, 'utf8'));
    } catch (err) {
      this.report(`cannot read it: ${describeError(err)}`);
      return;
    }
    if (token === '') {
      this.report('it is empty');
      return;
    }
    this.problem = undefined;
    if (token === this.current) return;
    this.current = token;
    this.options.onChange(token);
    this.options.logger?.info({ file: this.options.path }, this.options.changedMessage ?? 'gRPC token file changed: new token in use, the previous one still accepted for 5 minutes');
  }

  private report(problem: string): void {
    if (problem === this.problem) return;
    this.problem = problem;
    this.options.logger?.warn({ file: this.options.path, problem }, 'gRPC token file unusable; keeping the current token');
  }
}
