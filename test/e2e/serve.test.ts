/**
 * The built CLI serves partitions over gRPC from local disk while the files exist, and from the
 * store once Spark deleted them; `shuffle-agent fetch` writes the same bytes to a file.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { AgentProcess, CLI } from '../kit/agent-process.js';
import { tempDir } from '../kit/temp-dir.js';
import { SparkLikeExecutor, type CommittedFiles } from '../kit/spark-writer.js';
import { ShuffleAgentClient } from '../../agent/serve/client.js';
import { statusOf } from '../support/grpc-client-helpers.js';

const run = promisify(execFile);

describe('shuffle-agent run serves blocks over gRPC (end to end)', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('serves from local disk, then from the store after the executor directory is gone', async () => {
    const t = await tempDir('ssa-e2e-serve-');
    cleanups.push(t.cleanup);
    const local = join(t.path, 'local');
    const args = ['--local-dirs', local, '--store', `file:${join(t.path, 'store')}`, '--app-id', 'app-s'];
    let agent = await AgentProcess.start(args);
    cleanups.push(async () => void (await agent.stop('SIGKILL')));
    expect(agent.grpcPort).toBeGreaterThan(0);
    let client = new ShuffleAgentClient({ target: `127.0.0.1:${agent.grpcPort}` });
    cleanups.push(async () => client.close());

    const exec = new SparkLikeExecutor([local]);
    const outputs: CommittedFiles[] = [];
    for (let m = 0; m < 4; m++) outputs.push(await exec.commit({ shuffleId: 0, mapId: m, partitions: [70_000, 0, 3_000_000, 17] }));
    await agent.waitForStatus((s) => s.persistedOutputs === 4);

    const fetchAll = async (): Promise<void> => {
      for (const o of outputs) {
        for (let r = 0; r < 4; r++) {
          const got = await client.fetchBlock({ app_id: 'app-s', shuffle_id: 0, map_id: o.mapId, start_reduce_id: r, end_reduce_id: r + 1 });
          expect(got.equals(o.data.subarray(o.offsets[r], o.offsets[r + 1])), `map ${o.mapId} partition ${r}`).toBe(true);
        }
      }
    };
    await fetchAll();
    const before = await (await fetch(`${agent.url}/metrics`)).text();
    expect(before).toMatch(/^shuffle_agent_grpc_fetches_total\{source="local"\} 16$/m);
    // Every fetch is over: nothing read for a client is waiting for its socket.
    expect(before).toMatch(/^shuffle_agent_grpc_buffered_bytes 0$/m);

    // The executor stops (Spark deletes its directory) and the agent is restarted: nothing is
    // local any more, every byte must come from the store.
    await exec.stop();
    expect((await agent.stop('SIGTERM')).code).toBe(0);
    client.close();
    agent = await AgentProcess.start(args);
    client = new ShuffleAgentClient({ target: `127.0.0.1:${agent.grpcPort}` });
    await fetchAll();
    const after = await (await fetch(`${agent.url}/metrics`)).text();
    expect(after).toMatch(/^shuffle_agent_grpc_fetches_total\{source="store"\} 16$/m);

    const out = join(t.path, 'fetched.bin');
    await run(process.execPath, [CLI, 'fetch', '--target', `127.0.0.1:${agent.grpcPort}`, '--app-id', 'app-s', '--shuffle', '0', '--map', '2', '--reduce', '0-4', '-o', out]);
    expect((await readFile(out)).equals(outputs[2]?.data as Buffer)).toBe(true);
    expect((await agent.stop('SIGTERM')).code).toBe(0);
  });

  it('picks up a rotated --grpc-token-file while running', async () => {
    const t = await tempDir('ssa-e2e-token-');
    cleanups.push(t.cleanup);
    const tokenFile = join(t.path, 'token');
    await writeFile(tokenFile, 'before-rotation\n');
    const agent = await AgentProcess.start(['--local-dirs', join(t.path, 'local'), '--store', `file:${join(t.path, 'store')}`, '--grpc-token-file', tokenFile, '--grpc-token-reload-interval', '0.1']);
    cleanups.push(async () => void (await agent.stop('SIGKILL')));
    const status = (token: string): Promise<string> => {
      const c = new ShuffleAgentClient({ target: `127.0.0.1:${agent.grpcPort}`, token });
      return statusOf(c.getStatus()).finally(() => c.close());
    };
    expect(await status('before-rotation')).toBe('OK');
    expect(await status('after-rotation')).toBe('UNAUTHENTICATED');
    const changed = agent.waitForLog((l) => String(l.msg).startsWith('gRPC token file changed'));
    // As a Secret volume does it: a new file renamed over the old one.
    await writeFile(`${tokenFile}.new`, 'after-rotation\n');
    await rename(`${tokenFile}.new`, tokenFile);
    await changed;
    expect(await status('after-rotation')).toBe('OK');
    expect(await status('before-rotation')).toBe('OK');
    expect(await status('never-issued')).toBe('UNAUTHENTICATED');
    expect((await agent.stop('SIGTERM')).code).toBe(0);
  });
});
