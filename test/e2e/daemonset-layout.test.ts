/**
 * DaemonSet mode end to end: ONE agent (the built CLI as a child process) watches a hostPath-like
 * root laid out `<root>/<appId>/<executorId>/blockmgr-*` for TWO apps and THREE executors, as the
 * executor pod template's `subPathExpr: $(SPARK_APP_ID)/$(POD_NAME)` lays it out on a node. Each
 * app's outputs must land under its own app id in the store (even where shuffle and map ids
 * collide between apps) and read back the way Spark's FallbackStorage reads them, gRPC must list
 * and serve each app's outputs by app id, the status must list both apps, the manifests' probe
 * paths must answer, and SIGTERM must exit 0.
 *
 * Then a hostile tenant on the same node (test/support/hostile-tenant.ts): links to a secret
 * and into another app's directories, a hard link, FIFOs as index and data files, an index linked
 * to /dev/zero, a sparse 400 MiB index, a directory named like a data file, 20,000 sub-directories.
 * The other apps' outputs must all be stored and served, nothing of the tenant's reach the store
 * or a client, the agent must stay healthy, keep its watches bounded and reach `safe_to_exit`.
 *
 * Then an attacker pod in another namespace that sets the victim's `spark.app.id` (the layout
 * `{namespace}/{appId}/{executorId}` of the manifests), on the victim's node and alone on a second
 * node sharing the store: it gets no token, nothing of it is stored or served, and the victim's
 * reducers read the victim's bytes, from local disk and, once those are gone, from the store.
 *
 * Then one executor of two goes: the agent forgets its stored outputs `--forget-gone-outputs-after`
 * later (memory), and still lists and serves them, from the store.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { AgentProcess } from '../kit/agent-process.js';
import { cliScope } from '../support/cli-scope.js';
import { tempDir } from '../kit/temp-dir.js';
import { until } from '../kit/wait.js';
import { readPartitionsLikeSpark } from '../support/fallback-reader.js';
import { SparkLikeExecutor, type CommittedFiles } from '../kit/spark-writer.js';
import { FileStore } from '../../agent/store/file-store.js';
import { fallbackKey } from '../../agent/spark/fallback-key.js';
import { shuffleFileName } from '../../agent/spark/file-names.js';
import { ShuffleAgentClient } from '../../agent/serve/client.js';
import { HOSTILE_SHUFFLES, inotifyWatchesWithChildren, plantHostileFiles } from '../support/hostile-tenant.js';
import { rm } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';

const ROOT = resolve(import.meta.dirname, '../..');
const APP_A = 'spark-0a1b2c3d4e5f60718293a4b5c6d7e8f9';
const APP_B = 'spark-f9e8d7c6b5a4938271605f4e3d2c1b0a';
const APP_HOSTILE = 'spark-0000000000000000000000000000bad0';

/** Every file under `dir`, recursively. */
async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await filesUnder(p)));
    else out.push(p);
  }
  return out;
}

/** Every httpGet probe path in daemonset/*.yaml. */
function manifestProbePaths(): string[] {
  const dir = join(ROOT, 'daemonset');
  const paths = new Set<string>();
  const visit = (node: unknown, key?: string): void => {
    if (Array.isArray(node)) node.forEach((n) => visit(n));
    else if (node !== null && typeof node === 'object') {
      const o = node as Record<string, unknown>;
      if (key !== undefined && /Probe$/.test(key)) paths.add((o.httpGet as { path: string }).path);
      for (const [k, v] of Object.entries(o)) visit(v, k);
    }
  };
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.yaml'))) {
    for (const d of parseAllDocuments(readFileSync(join(dir, f), 'utf8'))) visit(d.toJS());
  }
  return [...paths].sort();
}

describe('DaemonSet layout: two apps, three executors, one agent', () => {
  const { cleanups, start } = cliScope();

  it('stores and serves each app under its own app id, lists both apps, and exits 0 on SIGTERM', async () => {
    const t = await tempDir('ssa-daemonset-');
    cleanups.push(t.cleanup);
    const localRoot = join(t.path, 'local');
    const storeDir = join(t.path, 'store');
    // What the kubelet makes of subPathExpr $(SPARK_APP_ID)/$(POD_NAME) for three executor pods.
    const a1 = new SparkLikeExecutor([join(localRoot, APP_A, 'app-a-exec-1')]);
    const a2 = new SparkLikeExecutor([join(localRoot, APP_A, 'app-a-exec-2')]);
    const b1 = new SparkLikeExecutor([join(localRoot, APP_B, 'app-b-exec-1')]);
    const expected: Array<{ appId: string; files: CommittedFiles }> = [];

    // Committed before the agent starts: found by the initial scan.
    expected.push({ appId: APP_A, files: await a1.commit({ shuffleId: 0, mapId: 0, partitions: [100, 0, 2_000] }) });

    const agent = await start([
      '--local-dirs',
      localRoot,
      '--local-dirs-layout',
      '{appId}/{executorId}',
      '--store',
      `file:${storeDir}`,
      // No reconciling rescan: file events alone must find every output.
      '--rescan-interval',
      '0',
    ]);
    const running = agent;
    await running.waitForStatus((s) => s.state === 'serving');
    // The probes the manifests point at are real endpoints of the built agent.
    const probePaths = manifestProbePaths();
    expect(probePaths).toEqual(['/healthz', '/readyz']);
    for (const path of probePaths) expect((await fetch(`${running.url}${path}`)).status, path).toBe(200);

    // Committed while the agent runs, in all three executors. App B reuses app A's shuffle and
    // map ids: only the app id in the key keeps them apart.
    expected.push({ appId: APP_A, files: await a1.commit({ shuffleId: 0, mapId: 1, partitions: [10, 20, 30] }) });
    expected.push({ appId: APP_A, files: await a2.commit({ shuffleId: 0, mapId: 2, partitions: [4_096] }) });
    expected.push({ appId: APP_A, files: await a2.commit({ shuffleId: 1, mapId: 3, partitions: [1, 2] }) });
    expected.push({ appId: APP_B, files: await b1.commit({ shuffleId: 0, mapId: 0, partitions: [300, 300] }) });
    expected.push({ appId: APP_B, files: await b1.commit({ shuffleId: 0, mapId: 1, partitions: [50], leaveDebris: true }) });
    // Every partition empty: Spark writes the index only.
    expected.push({ appId: APP_B, files: await b1.commit({ shuffleId: 2, mapId: 7, partitions: [0, 0] }) });

    const done = await running.waitForStatus((s) => s.persistedOutputs === expected.length && s.pendingOutputs === 0);
    expect(done.failed).toEqual([]);
    expect([...(done.apps as string[])].sort()).toEqual([APP_A, APP_B]);
    expect(done.state).toBe('serving');

    // One tree per app in the store, named by app id (not by executor, not the default app id).
    expect((await readdir(storeDir)).filter((n) => !n.startsWith('.')).sort()).toEqual([APP_A, APP_B]);
    const store = new FileStore(storeDir);
    try {
      for (const { appId, files } of expected) {
        const n = files.offsets.length - 1;
        const got = await readPartitionsLikeSpark(store, appId, files.shuffleId, files.mapId, 0, n);
        expect(got.equals(files.data), `${appId} shuffle ${files.shuffleId} map ${files.mapId}`).toBe(true);
        const dataKey = join(storeDir, fallbackKey(appId, files.shuffleId, shuffleFileName(files.shuffleId, files.mapId, 'data')));
        expect(existsSync(dataKey), `${appId} ${files.shuffleId}/${files.mapId} has a data object iff Spark wrote one`).toBe(files.dataPath !== undefined);
      }
      // Same shuffle and map ids in both apps, different bytes, both kept.
      expect((await readPartitionsLikeSpark(store, APP_A, 0, '0', 0, 3)).length).toBe(2_100);
      expect((await readPartitionsLikeSpark(store, APP_B, 0, '0', 0, 2)).length).toBe(600);
    } finally {
      await store.close();
    }

    // gRPC: each app lists only its own outputs and serves them by app id (shuffle 0 map 0
    // exists in both apps with different bytes).
    const client = new ShuffleAgentClient({ target: `127.0.0.1:${running.grpcPort}` });
    cleanups.push(async () => client.close());
    for (const app of [APP_A, APP_B]) {
      const listed: string[] = [];
      for await (const o of client.listMapOutputs(app)) listed.push(`${o.app_id}/${o.shuffle_id}/${o.map_id}`);
      const mine = expected.filter((e) => e.appId === app).map((e) => `${app}/${e.files.shuffleId}/${e.files.mapId}`);
      expect(listed.sort(), `outputs listed for ${app}`).toEqual(mine.sort());
    }
    for (const { appId, files } of expected) {
      const got = await client.fetchBlock({ app_id: appId, shuffle_id: files.shuffleId, map_id: files.mapId, start_reduce_id: 0, end_reduce_id: files.offsets.length - 1 });
      expect(got.equals(files.data), `gRPC ${appId} shuffle ${files.shuffleId} map ${files.mapId}`).toBe(true);
    }

    expect((await running.stop('SIGTERM')).code).toBe(0);
  });
  it('a hostile tenant on the node gets nothing stored or served, and the other apps everything; the agent stays healthy and reaches safe_to_exit', async () => {
    const t = await tempDir('ssa-daemonset-hostile-');
    cleanups.push(t.cleanup);
    const localRoot = join(t.path, 'local');
    const storeDir = join(t.path, 'store');
    const secret = Buffer.from('SECRET-OF-THE-NODE '.repeat(50));
    const secretPath = join(t.path, 'secret');
    await writeFile(secretPath, secret);
    const a1 = new SparkLikeExecutor([join(localRoot, APP_A, 'app-a-exec-1')]);
    const b1 = new SparkLikeExecutor([join(localRoot, APP_B, 'app-b-exec-1')]);
    const hostileBlockManager = join(localRoot, APP_HOSTILE, 'bad-exec-1', 'blockmgr-0badbad0-0000-0000-0000-000000000000');
    await mkdir(hostileBlockManager, { recursive: true });
    const expected: Array<{ appId: string; files: CommittedFiles }> = [];
    expected.push({ appId: APP_A, files: await a1.commit({ shuffleId: 0, mapId: 0, partitions: [100, 0, 2_000] }) });

    // A rescan every second: the agent's inotifywait reports renames and deletions only (Spark
    // commits by renaming), so what the tenant makes in place is found by a listing.
    const agent = await start(['--local-dirs', localRoot, '--local-dirs-layout', '{appId}/{executorId}', '--store', `file:${storeDir}`, '--rescan-interval', '1', '--incomplete-grace', '1']);
    const running = agent;
    const victimSub = dirname(expected[0]?.files.dataPath as string);
    const planted = await plantHostileFiles({
      blockManagerDir: hostileBlockManager,
      tenantSubDir: basename(victimSub) === '0a' ? '0b' : '0a',
      secretPath,
      secretSize: secret.length,
      victimSubDir: victimSub,
      victimBlockManagerDir: a1.blockManagerDirs[0] as string,
      victimSubDirName: basename(victimSub),
      dataFifos: 20,
      subDirs: 20_000,
    });
    // The other apps keep committing, app A into the very directories the tenant linked.
    for (let m = 1; m <= 6; m++) expected.push({ appId: APP_A, files: await a1.commit({ shuffleId: 0, mapId: m, partitions: [m * 100, 7] }) });
    expected.push({ appId: APP_B, files: await b1.commit({ shuffleId: 0, mapId: 0, partitions: [300, 300] }) });
    expected.push({ appId: APP_B, files: await b1.commit({ shuffleId: 1, mapId: 5, partitions: [0, 0] }) });

    // Each hostile file reported (the planted index files of the link, hard link and directory
    // pairs are fine in themselves: their data files are what is refused).
    // Linked directories are not entered (logged); files are reported in /v1/status.
    const mustReport = planted.filter((p) => basename(p).startsWith('shuffle_') && (!p.endsWith('.index') || /shuffle_(9|10|11)_1_0\.index$/.test(p)));
    const errorsOf = (s: Record<string, unknown>): Array<{ file?: string; error: string; kind: string }> => s.failed as Array<{ file?: string; error: string; kind: string }>;
    const done = await running.waitForStatus(
      (s) => s.persistedOutputs === expected.length && s.pendingOutputs === 0 && mustReport.every((p) => errorsOf(s).some((f) => f.file === p)),
      30_000,
    );
    expect((await fetch(`${running.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${running.url}/readyz`)).status).toBe(200);
    expect(done.apps).not.toContain(APP_HOSTILE);
    // Tenants read /v1/status: no sizes in what it says about their files.
    for (const f of errorsOf(done)) expect(f.error).not.toMatch(/\d+ bytes|has \d+|expects \d+/);
    // 20,000 planted sub-directories, a few dozen watched (Spark's own directories only).
    // The agent's and its inotifywait child's.
    expect(inotifyWatchesWithChildren(running.pid)).toBeLessThan(300);

    // Nothing of the tenant's in the store, and the secret nowhere in it.
    expect((await readdir(storeDir)).filter((n) => !n.startsWith('.')).sort()).toEqual([APP_A, APP_B]);
    for (const f of await filesUnder(storeDir)) expect((await readFile(f)).includes('SECRET-OF-THE-NODE'), f).toBe(false);
    const store = new FileStore(storeDir);
    try {
      for (const { appId, files } of expected) {
        const got = await readPartitionsLikeSpark(store, appId, files.shuffleId, files.mapId, 0, files.offsets.length - 1);
        expect(got.equals(files.data), `${appId} shuffle ${files.shuffleId} map ${files.mapId}`).toBe(true);
      }
    } finally {
      await store.close();
    }

    // gRPC: every other app's output served; the tenant's are not there at all.
    const client = new ShuffleAgentClient({ target: `127.0.0.1:${running.grpcPort}` });
    cleanups.push(async () => client.close());
    for (const { appId, files } of expected) {
      const got = await client.fetchBlock({ app_id: appId, shuffle_id: files.shuffleId, map_id: files.mapId, start_reduce_id: 0, end_reduce_id: files.offsets.length - 1 });
      expect(got.equals(files.data), `gRPC ${appId} ${files.shuffleId}/${files.mapId}`).toBe(true);
    }
    const listing = async (): Promise<string[]> => {
      const listed: string[] = [];
      for await (const o of client.listMapOutputs(APP_HOSTILE)) listed.push(`${o.shuffle_id}/${o.map_id}`);
      return listed;
    };
    await expect(listing()).rejects.toMatchObject({ code: 5, details: expect.stringMatching(/serves no such app/) });
    for (const shuffleId of [HOSTILE_SHUFFLES.secretLink, HOSTILE_SHUFFLES.hardLink, HOSTILE_SHUFFLES.dirAsData]) {
      await expect(client.fetchBlock({ app_id: APP_HOSTILE, shuffle_id: shuffleId, map_id: '1', start_reduce_id: 0, end_reduce_id: 1 })).rejects.toMatchObject({ code: 5 });
    }
    // App A's outputs under the tenant's app id, through the linked directories: not there.
    await expect(client.fetchBlock({ app_id: APP_HOSTILE, shuffle_id: 0, map_id: '2', start_reduce_id: 0, end_reduce_id: 1 })).rejects.toMatchObject({ code: 5 });

    // Nothing waits for the tenant's files: a drain reaches safe_to_exit, SIGTERM exits 0.
    const safe = await running.statusResponse('?wait=safe_to_exit&timeout=20&drain=true');
    expect(safe.status).toBe(200);
    expect(safe.body.state).toBe('safe_to_exit');
    expect((await running.stop('SIGTERM')).code).toBe(0);
  });

  it("an attacker pod in another namespace with the victim's app id gets no token, overwrites nothing, and the victim reads its own bytes", async () => {
    const t = await tempDir('ssa-daemonset-attacker-');
    cleanups.push(t.cleanup);
    const storeDir = join(t.path, 'store');
    const keyFile = join(t.path, 'app-key');
    await writeFile(keyFile, randomBytes(32).toString('hex'));
    const node1 = join(t.path, 'node-1');
    const node2 = join(t.path, 'node-2');
    const layoutArgs = (root: string): string[] => ['--local-dirs', root, '--local-dirs-layout', '{namespace}/{appId}/{executorId}', '--store', `file:${storeDir}`, '--rescan-interval', '0', '--grpc-app-key-file', keyFile];
    // What the kubelet makes of subPathExpr $(POD_NAMESPACE)/$(SPARK_APP_ID)/$(POD_NAME).
    const victimDir = join(node1, 'team-a', APP_A, 'victim-exec-1');
    const attackerDir = join(node1, 'team-b', APP_A, 'attacker-exec-1');
    const attackerElsewhereDir = join(node2, 'team-b', APP_A, 'attacker-exec-2');
    const victim = new SparkLikeExecutor([victimDir]);
    const attacker = new SparkLikeExecutor([attackerDir]);
    const attackerElsewhere = new SparkLikeExecutor([attackerElsewhereDir]);

    const agent = await start(layoutArgs(node1));
    const running = agent;
    const expected: CommittedFiles[] = [];
    for (let m = 0; m < 5; m++) expected.push(await victim.commit({ shuffleId: 0, mapId: m, partitions: [1_000 + m, 2_000, 0, 300] }));
    await running.waitForStatus((s) => s.persistedOutputs === 5 && s.pendingOutputs === 0);
    // The attacker's map outputs: the same shuffle and map ids, the same partition sizes, other bytes.
    for (let m = 0; m < 5; m++) await attacker.commit({ shuffleId: 0, mapId: m, partitions: [1_000 + m, 2_000, 0, 300] });
    const metric = async (url: string): Promise<number> => Number(/^shuffle_agent_refused_outputs_total (\d+)/m.exec(await (await fetch(`${url}/metrics`)).text())?.[1]);
    await until(async () => (await metric(running.url)) >= 5, 'the attacker outputs refused on node 1');

    // A second node where only the attacker runs: its agent finds the app id owned by team-a in the store.
    const other = await AgentProcess.start(layoutArgs(node2));
    cleanups.push(async () => void (await other.stop('SIGKILL')));
    for (let m = 0; m < 5; m++) await attackerElsewhere.commit({ shuffleId: 0, mapId: m, partitions: [1_000 + m, 2_000, 0, 300] });
    await until(async () => (await metric(other.url)) >= 5, 'the attacker outputs refused on node 2');
    expect((await other.status()).persistedOutputs).toBe(0);

    // Tokens: the victim's executor gets its app's token; the attacker's, on either node, does not.
    const ask = async (url: string, namespace: string, dir: string, executor: string): Promise<Response> => {
      const proof = randomBytes(24).toString('base64url');
      await writeFile(join(dir, '.shuffle-agent-proof'), proof);
      return fetch(`${url}/v1/app-token?namespace=${namespace}&app=${APP_A}&executor=${executor}&proof=${proof}`, { method: 'POST' });
    };
    expect((await ask(running.url, 'team-b', attackerDir, 'attacker-exec-1')).status).toBe(403);
    expect((await ask(other.url, 'team-b', attackerElsewhereDir, 'attacker-exec-2')).status).toBe(403);
    const issued = await ask(running.url, 'team-a', victimDir, 'victim-exec-1');
    expect(issued.status).toBe(200);
    const { token } = (await issued.json()) as { token: string };

    // The store holds the victim's bytes, as Spark's FallbackStorage reads them.
    const store = new FileStore(storeDir);
    cleanups.push(() => store.close());
    for (const files of expected) {
      const got = await readPartitionsLikeSpark(store, APP_A, 0, files.mapId, 0, 4);
      expect(got.equals(files.data), `stored map ${files.mapId}`).toBe(true);
    }
    // gRPC with the victim's token: the victim's bytes from local disk, then (its executor gone,
    // Spark deleted blockmgr-*) from the store, while the attacker's files are still on the node.
    const client = new ShuffleAgentClient({ target: `127.0.0.1:${running.grpcPort}`, token });
    cleanups.push(async () => client.close());
    const fetchAll = async (): Promise<boolean[]> =>
      Promise.all(expected.map(async (f) => (await client.fetchBlock({ app_id: APP_A, shuffle_id: 0, map_id: f.mapId, start_reduce_id: 0, end_reduce_id: 4 })).equals(f.data)));
    expect(await fetchAll()).toEqual([true, true, true, true, true]);
    await rm(victim.blockManagerDirs[0] as string, { recursive: true });
    const locations = async (): Promise<string[]> => {
      const out: string[] = [];
      for await (const o of client.listMapOutputs(APP_A)) out.push(String(o.location));
      return out;
    };
    await until(async () => (await locations()).every((l) => l === 'OUTPUT_LOCATION_STORED'), 'the victim outputs served from the store only', 20_000);
    expect(await fetchAll()).toEqual([true, true, true, true, true]);
    expect((await running.stop('SIGTERM')).code).toBe(0);
  });

  it('forgets the stored outputs of an executor gone for --forget-gone-outputs-after, and still lists and serves them, from the store', async () => {
    const t = await tempDir('ssa-daemonset-forget-');
    cleanups.push(t.cleanup);
    const localRoot = join(t.path, 'local');
    const gone = new SparkLikeExecutor([join(localRoot, APP_A, 'app-a-exec-1')]);
    const alive = new SparkLikeExecutor([join(localRoot, APP_A, 'app-a-exec-2')]);
    const running = await start(['--local-dirs', localRoot, '--local-dirs-layout', '{appId}/{executorId}', '--store', `file:${join(t.path, 'store')}`, '--forget-gone-outputs-after', '1s']);
    await running.waitForStatus((s) => s.state === 'serving');
    const goneFiles = [await gone.commit({ shuffleId: 0, mapId: 1, partitions: [100, 2_000] }), await gone.commit({ shuffleId: 0, mapId: 2, partitions: [7, 0] })];
    const aliveFiles = await alive.commit({ shuffleId: 0, mapId: 3, partitions: [300, 30] });
    await running.waitForStatus((s) => s.persistedOutputs === 3 && s.pendingOutputs === 0);
    const client = new ShuffleAgentClient({ target: `127.0.0.1:${running.grpcPort}` });
    cleanups.push(async () => client.close());
    // map id, location, and the write-back phase: set while the agent's queue has the output,
    // empty for an output listed from the store.
    const listed = async (): Promise<string[]> => {
      const ids: string[] = [];
      for await (const o of client.listMapOutputs(APP_A)) ids.push(`${o.map_id} ${o.location} ${o.phase || '-'}`);
      return ids.sort();
    };
    expect(await listed()).toEqual(['1 OUTPUT_LOCATION_BOTH persisted', '2 OUTPUT_LOCATION_BOTH persisted', '3 OUTPUT_LOCATION_BOTH persisted']);

    // The first executor stops and its directory goes: its outputs are stored only, then the
    // queue forgets them a second later and they are listed from the store; the second
    // executor's output stays in the queue.
    await rm(gone.blockManagerDirs[0] as string, { recursive: true });
    const forgotten = ['1 OUTPUT_LOCATION_STORED -', '2 OUTPUT_LOCATION_STORED -', '3 OUTPUT_LOCATION_BOTH persisted'];
    let last: string[] = [];
    await until(async () => (last = await listed()).join() === forgotten.join(), () => `the gone executor outputs forgotten (listed: ${last.join(', ')})`, 20_000);
    for (const files of [...goneFiles, aliveFiles]) {
      const got = await client.fetchBlock({ app_id: APP_A, shuffle_id: files.shuffleId, map_id: files.mapId, start_reduce_id: 0, end_reduce_id: files.offsets.length - 1 });
      expect(got.equals(files.data), `map ${files.mapId}`).toBe(true);
      const second = await client.fetchBlock({ app_id: APP_A, shuffle_id: files.shuffleId, map_id: files.mapId, start_reduce_id: 1, end_reduce_id: 2 });
      expect(second.equals(files.data.subarray(files.offsets[1], files.offsets[2])), `map ${files.mapId} partition 1`).toBe(true);
    }
    const after = await running.waitForStatus((s) => s.state === 'serving');
    expect(after).toMatchObject({ persistedOutputs: 3, pendingOutputs: 0, droppedOutputs: 0 });
    expect((await running.stop('SIGTERM')).code).toBe(0);
  });
});
