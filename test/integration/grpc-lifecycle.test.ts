/** ListMapOutputs, GetStatus / WatchStatus / Drain against a fake lifecycle, close(), and `shuffle-agent fetch`. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ShuffleAgentClient } from '../../agent/serve/client.js';
import { runFetch } from '../../agent/commands/fetch.js';
import type { AgentStatus, Chunk, DrainProgressMessage, MapOutputInfo } from '../../agent/serve/proto.js';
import { startGrpcServer, type RunningGrpcServer } from '../../agent/serve/server.js';
import { FileStore } from '../../agent/store/file-store.js';
import { statusOf } from '../support/grpc-client-helpers.js';
import { FakeLifecycle, MapLookup, RecordingMetrics, storeOutput, tempDir, writeOutput, type WrittenOutput } from '../support/grpc-fixtures.js';

const APP = 'spark-11fe';

describe('gRPC listing, status, drain and close', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let server: RunningGrpcServer;
  let client: ShuffleAgentClient;
  const lifecycle = new FakeLifecycle();
  const metrics = new RecordingMetrics();
  const outs: WrittenOutput[] = [];

  beforeAll(async () => {
    dir = await tempDir('grpc-life-');
    const store = new FileStore(join(dir.path, 'store'));
    const lookup = new MapLookup();
    // map 0: local only; map 1: local and stored; map 2: stored, local gone but still in the queue;
    // map 3: stored only, forgotten by the queue; map 4: shuffle 1, local only.
    for (const [i, shuffle] of [0, 0, 0, 0, 1].entries()) outs.push(await writeOutput(join(dir.path, 'local'), APP, shuffle, String(i), [i, 10, 0, 7]));
    lookup.add((outs[0] as WrittenOutput).output, 'queued');
    lookup.add((outs[1] as WrittenOutput).output, 'persisted', true);
    lookup.add((outs[2] as WrittenOutput).output, 'persisted', false);
    lookup.add((outs[4] as WrittenOutput).output, 'uploading');
    for (const i of [1, 2, 3]) await storeOutput(store, (outs[i] as WrittenOutput).output);
    server = await startGrpcServer({ lookup, store, lifecycle, metrics }, { host: '127.0.0.1', port: 0 });
    client = new ShuffleAgentClient({ target: `127.0.0.1:${server.port}` });
  });

  afterAll(async () => {
    client.close();
    await server.close(500);
    await dir.remove();
  });

  async function list(shuffles: number[] = []): Promise<MapOutputInfo[]> {
    const got: MapOutputInfo[] = [];
    for await (const info of client.listMapOutputs(APP, shuffles)) got.push(info);
    return got.sort((a, b) => Number(a.map_id) - Number(b.map_id));
  }

  it('lists an app’s outputs with partition lengths and where they live', async () => {
    const got = await list();
    expect(got.map((i) => [i.shuffle_id, i.map_id, i.location, i.phase])).toEqual([
      [0, '0', 'OUTPUT_LOCATION_LOCAL', 'queued'],
      [0, '1', 'OUTPUT_LOCATION_BOTH', 'persisted'],
      [0, '2', 'OUTPUT_LOCATION_STORED', 'persisted'],
      [0, '3', 'OUTPUT_LOCATION_STORED', ''],
      [1, '4', 'OUTPUT_LOCATION_LOCAL', 'uploading'],
    ]);
    expect(got[3]?.partition_lengths).toEqual(['3', '10', '0', '7']);
    expect(got[3]?.data_length).toBe('20');
    expect(got[3]?.index_key).toMatch(/^spark-11fe\/0\/\d+\/shuffle_0_3_0\.index$/);
    expect((await list([1])).map((i) => i.map_id)).toEqual(['4']);
    expect(await statusOf(list([5]))).toBe('NOT_FOUND');
    expect(await statusOf((async () => { for await (const _ of client.listMapOutputs('spark-none')) void _; })())).toBe('NOT_FOUND');
    expect(await statusOf((async () => { for await (const _ of client.listMapOutputs('../etc')) void _; })())).toBe('INVALID_ARGUMENT');
  });

  it('reports status, streams state changes, and streams a drain to its end', async () => {
    const status = await client.getStatus();
    expect(status).toMatchObject({ state: 'AGENT_STATE_SERVING', state_since_ms: '1700000000000', pending_outputs: '3', pending_bytes: '300' });

    const watch = client.watchStatus();
    const seen: AgentStatus[] = [];
    const watched = new Promise<void>((resolve) => {
      watch.on('data', (s: AgentStatus) => {
        seen.push(s);
        if (s.state === 'AGENT_STATE_SAFE_TO_EXIT') resolve();
      });
    });
    watch.on('error', () => undefined);
    // Wait for the server to subscribe (its first message is the current status).
    await new Promise((resolve) => watch.once('data', resolve));

    const drain = client.drain('preStop');
    const progress: DrainProgressMessage[] = [];
    const drained = new Promise<void>((resolve, reject) => drain.on('data', (p: DrainProgressMessage) => progress.push(p)).on('end', resolve).on('error', reject));
    await new Promise((resolve) => drain.once('data', resolve));
    lifecycle.set({ pendingOutputs: 1, pendingBytes: 100, persistedOutputs: 2 });
    // Progress is a snapshot stream (a fast producer may coalesce): wait for this one to arrive.
    await new Promise<void>((resolve) => drain.on('data', (p: DrainProgressMessage) => p.status.pending_outputs === '1' && resolve()));
    lifecycle.set({ state: 'safe_to_exit', pendingOutputs: 0, pendingBytes: 0, persistedOutputs: 3 });
    await drained;
    await watched;
    watch.cancel();

    expect(lifecycle.drainReasons).toEqual(['preStop']);
    expect(progress[0]?.status.state).toBe('AGENT_STATE_DRAINING');
    expect(progress[0]?.status.reason).toBe('preStop');
    expect(progress.map((p) => p.status.pending_outputs)).toContain('1');
    expect(progress.at(-1)).toMatchObject({ done: true, status: { state: 'AGENT_STATE_SAFE_TO_EXIT', pending_outputs: '0', persisted_outputs: '3' } });
    expect(progress.slice(0, -1).every((p) => !p.done)).toBe(true);
    expect(seen.map((s) => s.state)).toEqual(['AGENT_STATE_SERVING', 'AGENT_STATE_DRAINING', 'AGENT_STATE_SAFE_TO_EXIT']);
  });

  it('answers UNIMPLEMENTED for lifecycle RPCs when no lifecycle is wired', async () => {
    const s = await startGrpcServer({ lookup: new MapLookup(), store: new FileStore(join(dir.path, 'store')) }, { host: '127.0.0.1', port: 0 });
    const c = new ShuffleAgentClient({ target: `127.0.0.1:${s.port}` });
    try {
      expect(await statusOf(c.getStatus())).toBe('UNIMPLEMENTED');
      expect(await statusOf(new Promise((resolve, reject) => c.drain('x').on('end', resolve).on('error', reject).resume()))).toBe('UNIMPLEMENTED');
    } finally {
      c.close();
      await s.close(200);
    }
  });

  it('close() ends status streams with OK at once and cuts a stalled fetch at the deadline', async () => {
    const lookup = new MapLookup();
    const big = await writeOutput(join(dir.path, 'big'), APP, 9, '0', [40 * 1024 * 1024]);
    lookup.add(big.output);
    const m = new RecordingMetrics();
    const s = await startGrpcServer({ lookup, store: new FileStore(join(dir.path, 'store')), lifecycle: new FakeLifecycle(), metrics: m }, { host: '127.0.0.1', port: 0 });
    const c = new ShuffleAgentClient({ target: `127.0.0.1:${s.port}` });
    try {
      const watch = c.watchStatus();
      const watchEnded = statusOf(new Promise((resolve, reject) => watch.on('end', resolve).on('error', reject).resume()));
      const fetch = c.fetchShuffleBlock({ app_id: APP, shuffle_id: 9, map_id: 0, start_reduce_id: 0, end_reduce_id: 1 });
      await new Promise<Chunk>((resolve) => fetch.once('data', resolve));
      fetch.pause();
      const fetchEnded = statusOf(new Promise((resolve, reject) => fetch.on('end', resolve).on('error', reject)));
      const started = Date.now();
      await s.close(300);
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
      expect(await watchEnded).toBe('OK');
      expect(await fetchEnded).not.toBe('OK');
      await m.idle();
      expect(s.activeStreams()).toBe(0);
      // Idempotent: the same promise, already settled.
      await s.close(300);
    } finally {
      c.close();
    }
  });

  it('shuffle-agent fetch writes the partitions to a file, or says why not with an exit code', async () => {
    const target = `127.0.0.1:${server.port}`;
    const out = join(dir.path, 'fetched.bin');
    const stderr = new PassThrough();
    const io = { stdout: new PassThrough(), stderr, env: {} };
    expect(await runFetch(['--target', target, '--app-id', APP, '--shuffle', '0', '--map', '1', '--reduce', '0-4', '-o', out], io)).toBe(0);
    const o = outs[1] as WrittenOutput;
    expect((await readFile(out)).equals(o.data as Buffer)).toBe(true);
    const stdout = new PassThrough();
    const pieces: Buffer[] = [];
    stdout.on('data', (b: Buffer) => pieces.push(b));
    expect(await runFetch(['--target', target, '--app-id', APP, '--shuffle', '0', '--map', '1', '--reduce', '1'], { ...io, stdout })).toBe(0);
    expect(Buffer.concat(pieces).equals((o.data as Buffer).subarray(1, 11))).toBe(true);
    expect(await runFetch(['--target', target, '--app-id', APP, '--shuffle', '0', '--map', '77', '--reduce', '0', '-o', join(dir.path, 'none.bin')], io)).toBe(7);
    expect(String(stderr.read())).toContain('NOT_FOUND');
    await expect(readFile(join(dir.path, 'none.bin'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await runFetch(['--target', target, '--app-id', APP, '--shuffle', '0', '--map', '1'], io)).toBe(2);
    expect(await runFetch(['--target', target, '--app-id', APP, '--shuffle', '0', '--map', '1', '--reduce', '3-2'], io)).toBe(2);
  });
});
