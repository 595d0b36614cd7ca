/**
 * The built executable sizes libuv's thread pool: libuv starts all of its threads at the first
 * file operation, so the pool shows as threads of the process (/proc/<pid>/task). The same agent
 * started with UV_THREADPOOL_SIZE=4 (libuv's default) is the baseline: the difference is the pool.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentProcess } from '../kit/agent-process.js';
import { tempDir } from '../kit/temp-dir.js';

describe('thread pool', () => {
  const cleanups: Array<() => Promise<unknown>> = [];

  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function threadsOf(env: NodeJS.ProcessEnv): Promise<number> {
    const t = await tempDir('ssa-threads-');
    cleanups.push(t.cleanup);
    const agent = await AgentProcess.start(['--local-dirs', join(t.path, 'local'), '--store', `file:${join(t.path, 'store')}`, '--rescan-interval', '0'], { env });
    cleanups.push(() => agent.stop('SIGKILL'));
    // The initial scan is done: files were read, so the pool exists.
    return readdirSync(`/proc/${agent.pid}/task`).length;
  }

  it('runs 16 libuv threads without UV_THREADPOOL_SIZE set, and honours the variable when set', async () => {
    const baseline = await threadsOf({ UV_THREADPOOL_SIZE: '4' });
    const sized = await threadsOf({ UV_THREADPOOL_SIZE: undefined });
    expect(sized - baseline).toBe(12);
    const explicit = await threadsOf({ UV_THREADPOOL_SIZE: '6' });
    expect(explicit - baseline).toBe(2);
  });
});
