/**
 * The kit's agent launcher (test/kit/agent-process.ts), which every CLI test and the benchmarks
 * start the agent through: a start that fails leaves no agent running behind it.
 */
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentProcess } from '../kit/agent-process.js';
import { tempDir } from '../kit/temp-dir.js';

/** Pids of live processes whose command line holds `marker` (a unique app id). */
function processesWith(marker: string): number[] {
  const pids: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0').includes(marker)) pids.push(Number(d));
    } catch {
      // exited meanwhile
    }
  }
  return pids;
}

describe('AgentProcess.start', () => {
  const cleanups: Array<() => Promise<unknown>> = [];

  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function args(app: string): Promise<string[]> {
    const t = await tempDir('ssa-launcher-');
    cleanups.push(t.cleanup);
    return ['--local-dirs', join(t.path, 'local'), '--store', `file:${join(t.path, 'store')}`, '--app-id', app];
  }

  it('finds a started agent by its app id (what the next test looks for)', async () => {
    const app = `launcher-${randomUUID()}`;
    const agent = await AgentProcess.start(await args(app));
    cleanups.push(() => agent.stop('SIGKILL'));
    expect(processesWith(app)).toEqual([agent.pid]);
  });

  it('kills the agent and waits for it when the start times out, then rejects', async () => {
    const app = `launcher-${randomUUID()}`;
    // 1 ms: no agent is listening that fast, so the start times out with the child running.
    await expect(AgentProcess.start(await args(app), { startTimeoutMs: 1 })).rejects.toThrow(/the agent did not start: timed out after 1 ms/);
    expect(processesWith(app)).toEqual([]);
  });

  it('rejects with the agent\'s own words when it exits before it listens', async () => {
    await expect(AgentProcess.start([...(await args('launcher-bad-flag')), '--no-such-flag'])).rejects.toThrow(/the agent did not start: process exited \(2\)[\s\S]*--no-such-flag/);
  });
});
