/** The built CLI as a child process: real signals, parsed JSON log lines, exit status. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { AGENT_CLI } from './repo-root.js';

/** The built CLI this module runs. */
export const CLI = AGENT_CLI;

export type LogLine = Record<string, unknown> & { msg?: string; level?: string };

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** ms since epoch when the process exited. */
  at: number;
}

/** How the CLI's process is started: what the tests and the benchmarks need. */
export interface LaunchOptions {
  /** Added to this process's environment. */
  env?: NodeJS.ProcessEnv;
  /** Arguments for Node itself, before the CLI (e.g. `--cpu-prof`). */
  nodeArgs?: string[];
  /** Above 0: run under `nice -n` (a benchmark's agent yields to the workload it measures beside). */
  nice?: number;
  /** Pass the CLI's stderr through to this process's (benchmarks) instead of collecting it. */
  inheritStderr?: boolean;
}

export class CliProcess {
  readonly lines: LogLine[] = [];
  readonly stderr: string[] = [];
  readonly exited: Promise<Exit>;
  /** The child itself: its pid for /proc statistics, `exitCode`, its events. */
  readonly child: ChildProcess;
  private waiters: Array<{ match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }> = [];
  private readonly listeners: Array<(l: LogLine) => void> = [];

  constructor(args: string[], options: LaunchOptions = {}) {
    const argv = [...(options.nodeArgs ?? []), CLI, ...args];
    const [cmd, cmdArgs] = (options.nice ?? 0) > 0 ? ['nice', ['-n', String(options.nice), process.execPath, ...argv]] : [process.execPath, argv];
    this.child = spawn(cmd, cmdArgs, { env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', options.inheritStderr ? 'inherit' : 'pipe'] });
    createInterface({ input: this.child.stdout! }).on('line', (text) => {
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        line = { msg: text };
      }
      this.lines.push(line);
      for (const f of this.listeners) f(line);
      for (const w of [...this.waiters]) {
        if (w.match(line)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    });
    if (this.child.stderr) createInterface({ input: this.child.stderr }).on('line', (text) => this.stderr.push(text));
    this.exited = new Promise((resolveExit) => this.child.on('exit', (code, signal) => resolveExit({ code, signal, at: Date.now() })));
  }

  get pid(): number {
    return this.child.pid as number;
  }

  /** Calls `f` with every log line from now on. */
  onLine(f: (l: LogLine) => void): void {
    this.listeners.push(f);
  }

  /** The first log line (already printed or to come) that `match` accepts. */
  log(match: (l: LogLine) => boolean): Promise<LogLine> {
    const found = this.lines.find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolveLine, reject) => {
      this.waiters.push({ match, resolve: resolveLine });
      void this.exited.then((e) => reject(new Error(`process exited (${e.code ?? e.signal}) before the expected log line; stderr: ${this.stderr.join('\n')}`)));
    });
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    this.child.kill(signal);
  }
}
