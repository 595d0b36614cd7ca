/**
 * `shuffle-agent run` as a child process, as an SRE would run it: real signals, real files, real
 * ports (0: the agent picks free ones and logs them). Spawning and log parsing are CliProcess's.
 * The kit's one agent launcher: the tests and the benchmarks (through spark-harness's
 * startAgentCli) start the agent here.
 */
import { CLI, CliProcess, type Exit, type LaunchOptions, type LogLine } from './cli-process.js';
import { until } from './wait.js';

export { CLI, type LaunchOptions, type LogLine };

/** Rejects after `ms` with `what` (a bound on waiting, not a sleep). */
function within<T>(p: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what()}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export interface StartOptions extends LaunchOptions {
  /** How long each step of the start (HTTP, gRPC, the initial scan) may take; default 20 s. */
  startTimeoutMs?: number;
}

export class AgentProcess extends CliProcess {
  httpPort = 0;
  grpcPort = 0;
  private hasExited = false;

  private constructor(args: string[], options: LaunchOptions) {
    super(args, options);
    void this.exited.then(() => (this.hasExited = true));
  }

  /**
   * Start `shuffle-agent run ...args` (free ports, log level info unless `args` set one) and wait
   * until its HTTP and gRPC servers listen and its initial scan is done. When that does not come
   * (a timeout, or the agent exits), the agent is killed and waited for before this rejects: no
   * child outlives a failed start.
   */
  static async start(args: string[], options: StartOptions = {}): Promise<AgentProcess> {
    const agent = new AgentProcess(['run', '--http-listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--log-level', 'info', ...args], options);
    const timeoutMs = options.startTimeoutMs ?? 20_000;
    try {
      const http = await agent.waitForLog((l) => l.msg === 'http listening', timeoutMs);
      const grpc = await agent.waitForLog((l) => l.msg === 'grpc listening', timeoutMs);
      agent.httpPort = (http.http as { port: number }).port;
      agent.grpcPort = (grpc.grpc as { port: number }).port;
      await agent.waitForLog((l) => l.msg === 'initial scan done', timeoutMs);
    } catch (err) {
      await agent.stop('SIGKILL');
      throw new Error(`the agent did not start: ${(err as Error).message}`, { cause: err });
    }
    return agent;
  }

  /** True until the process exited. */
  get alive(): boolean {
    return !this.hasExited;
  }

  get url(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  /** The first log line (past or future) matching `predicate`. */
  waitForLog(predicate: (l: LogLine) => boolean, timeoutMs = 15_000): Promise<LogLine> {
    return within(this.log(predicate), timeoutMs, () => `a log line; last: ${JSON.stringify(this.lines.slice(-3))}`);
  }

  /** The `/v1/status` document. */
  async status(): Promise<Record<string, unknown>> {
    return (await this.statusResponse()).body;
  }

  /** `/v1/status` with a query (`?wait=...`), HTTP status included. */
  async statusResponse(query = ''): Promise<{ status: number; body: Record<string, unknown> }> {
    const res = await fetch(`${this.url}/v1/status${query}`);
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  /** Poll /v1/status until `predicate` holds (the only view of a child's state from outside). */
  async waitForStatus(predicate: (s: Record<string, unknown>) => boolean, timeoutMs = 20_000): Promise<Record<string, unknown>> {
    let last: Record<string, unknown> = {};
    return until(
      async () => {
        last = await this.status();
        return predicate(last) && last;
      },
      () => `a status that matches; last: ${JSON.stringify(last)}`,
      timeoutMs,
      20,
    );
  }

  /** Send `signal` (unless it already exited) and wait for the exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<Exit> {
    if (!this.hasExited) this.kill(signal);
    return this.exited;
  }
}
