/**
 * `shuffle-agent run` as a child process, as an SRE would run it: real signals, real files, real
 * ports (0: the agent picks free ones and logs them). Spawning and log parsing are CliProcess's.
 */
import { CLI, CliProcess, type Exit, type LogLine } from './cli-process.js';

export { CLI, type LogLine };

/** Rejects after `ms` with `what` (a bound on waiting, not a sleep). */
function within<T>(p: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what()}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export class AgentProcess extends CliProcess {
  httpPort = 0;
  grpcPort = 0;
  private hasExited = false;

  private constructor(args: string[], env?: NodeJS.ProcessEnv) {
    super(args, env);
    void this.exited.then(() => (this.hasExited = true));
  }

  /**
   * Start `shuffle-agent run ...args` (free ports, log level info unless `args` set one) and wait
   * until its HTTP and gRPC servers listen and its initial scan is done.
   */
  static async start(args: string[], options: { env?: NodeJS.ProcessEnv } = {}): Promise<AgentProcess> {
    const agent = new AgentProcess(['run', '--http-listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--log-level', 'info', ...args], options.env);
    const http = await agent.waitForLog((l) => l.msg === 'http listening', 20_000);
    const grpc = await agent.waitForLog((l) => l.msg === 'grpc listening', 20_000);
    agent.httpPort = (http.http as { port: number }).port;
    agent.grpcPort = (grpc.grpc as { port: number }).port;
    await agent.waitForLog((l) => l.msg === 'initial scan done', 20_000);
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
    const deadline = Date.now() + timeoutMs;
    let last: Record<string, unknown> = {};
    while (Date.now() < deadline) {
      last = await this.status();
      if (predicate(last)) return last;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`status never matched; last: ${JSON.stringify(last)}`);
  }

  /** Send `signal` (unless it already exited) and wait for the exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<Exit> {
    if (!this.hasExited) this.kill(signal);
    return this.exited;
  }
}
