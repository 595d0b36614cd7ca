/**
 * What every end-to-end file on the built CLI sets up around its tests: it fails at once when
 * the CLI is not built, and after each test kills the agents it started, then runs its clean-ups,
 * last first.
 */
import { existsSync } from 'node:fs';
import { afterEach, beforeAll } from 'vitest';
import { AgentProcess, CLI, type StartOptions } from '../kit/agent-process.js';

export interface CliScope {
  /** Run after each test, last pushed first, once the agents are stopped. */
  readonly cleanups: Array<() => Promise<unknown>>;
  /** AgentProcess.start, the agent killed after the test. */
  start(args: string[], options?: StartOptions): Promise<AgentProcess>;
}

/** Registers the hooks in the calling describe block. */
export function cliScope(): CliScope {
  const agents: AgentProcess[] = [];
  const cleanups: Array<() => Promise<unknown>> = [];
  beforeAll(() => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`);
  });
  afterEach(async () => {
    for (const a of agents.splice(0)) await a.stop('SIGKILL');
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  return {
    cleanups,
    start: async (args, options) => {
      const agent = await AgentProcess.start(args, options);
      agents.push(agent);
      return agent;
    },
  };
}
