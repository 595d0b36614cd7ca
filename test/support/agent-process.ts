/**
 * The built CLI as a child process, as an SRE would run it: real signals, real files, real
 * ports (0: the agent picks free ones and logs them).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../../dist/agent/cli.js', import.meta.url));

export interface LogLine {
  level: string;
  msg: string;
  [key: string]: unknown;
}

export class AgentProcess extends EventEmitter<{ log: [LogLine] }> {
  readonly logs: LogLine[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  httpPort = 0;
  grpcPort = 0;

  private constructor(readonly child: ChildProcess) {
    super();
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let parsed: LogLine;
      try {
        parsed = JSON.parse(line) as LogLine;
      } catch {
        parsed = { level: 'raw', msg: line };
      }
      this.logs.push(parsed);
      this.emit('log', parsed);
    });
    createInterface({ input: child.stderr! }).on('line', (line) => this.stderr.push(line));
  }

  /** Start `shuffle-agent <command> ...args` and wait until its HTTP server is listening. */
  static async start(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; command?: string } = {}): Promise<AgentProcess> {
    const child = spawn(process.execPath, [CLI, options.command ?? 'run', '--http-listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', ...args], {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const agent = new AgentProcess(child);
    const listening = await Promise.race([
      agent.waitForLog((l) => l.msg === 'http listening', 20_000).then(async (l) => {
        await agent.waitForLog((g) => g.msg === 'grpc listening', 20_000);
        return l;
      }),
      agent.exited.then((e) => {
        throw new Error(`agent exited early (${e.code ?? e.signal}): ${agent.stderr.join('\n')}`);
      }),
    ]);
    agent.httpPort = (listening.http as { port: number }).port;
    const grpc = agent.logs.find((l) => l.msg === 'grpc listening');
    if (grpc) agent.grpcPort = (grpc.grpc as { port: number }).port;
    return agent;
  }

  get url(): string {
    return `http://127.0.0.1:${this.httpPort}`;
  }

  /** The first log line (past or future) matching `predicate`. */
  waitForLog(predicate: (l: LogLine) => boolean, timeoutMs = 15_000): Promise<LogLine> {
    const seen = this.logs.find(predicate);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('log', onLog);
        reject(new Error(`timed out waiting for a log line; last: ${JSON.stringify(this.logs.slice(-3))}`));
      }, timeoutMs);
      const onLog = (l: LogLine): void => {
        if (!predicate(l)) return;
        clearTimeout(timer);
        this.off('log', onLog);
        resolve(l);
      };
      this.on('log', onLog);
    });
  }

  async status(): Promise<Record<string, unknown>> {
    const res = await fetch(`${this.url}/v1/status`);
    return (await res.json()) as Record<string, unknown>;
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

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    this.child.kill(signal);
  }

  /** Send `signal` and wait for the exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}
