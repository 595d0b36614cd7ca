/**
 * npm run demo — the whole loop on the embedded default, in well under a minute:
 * start the agent (built CLI) on local dirs and a file store under ./var/demo, commit map outputs
 * the way a Spark executor does, watch them reach the store, read partitions back the way
 * Spark's FallbackStorage does, stop the "executor" (Spark deletes its directory), and stop the
 * agent with SIGTERM.
 */
import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { buffer } from 'node:stream/consumers';
import { SparkLikeExecutor } from '../test/kit/spark-writer.js';
import { until } from '../test/kit/wait.js';
import { FileStore } from '../agent/store/file-store.js';
import { fallbackKey } from '../agent/spark/fallback-key.js';
import { shuffleFileName } from '../agent/spark/file-names.js';

const CLI = fileURLToPath(new URL('../agent/shuffle-agent.cjs', import.meta.url));
const base = resolve('var/demo');
const local = resolve(base, 'spark-local');
const storeRoot = resolve(base, 'fallback');
const appId = 'spark-demo0000000000000000000000000000';

const say = (s: string): void => void process.stdout.write(`${s}\n`);

async function main(): Promise<void> {
  await rm(base, { recursive: true, force: true });
  say(`1. starting the agent: local dirs ${local}, store file:${storeRoot}`);
  const child = spawn(process.execPath, [CLI, 'run', '--local-dirs', local, '--store', `file:${storeRoot}`, '--app-id', appId, '--http-listen', '127.0.0.1:0', '--grpc-listen', '127.0.0.1:0', '--log-level', 'info'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let port = 0;
  const lines = createInterface({ input: child.stdout });
  await new Promise<void>((ok) =>
    lines.on('line', (l) => {
      const j = JSON.parse(l) as { msg: string; http?: { port: number } };
      if (j.msg === 'http listening' && j.http) port = j.http.port;
      if (j.msg === 'initial scan done') ok();
    }),
  );
  const status = async (): Promise<Record<string, number | string>> => (await (await fetch(`http://127.0.0.1:${port}/v1/status`)).json()) as Record<string, number | string>;
  say(`   agent is ${(await status()).state}; HTTP on 127.0.0.1:${port} (/healthz /readyz /metrics /v1/status)`);

  say('2. a Spark-like executor commits 20 map outputs (attempt files, index renamed before data, one data-less output)');
  const exec = new SparkLikeExecutor([local]);
  const outputs = [];
  for (let m = 0; m < 20; m++) {
    outputs.push(await exec.commit({ shuffleId: 0, mapId: m, partitions: m === 5 ? [0, 0, 0, 0] : [4096 * m, 100, 0, 77], leaveDebris: m % 7 === 0, checksum: true }));
  }
  const t0 = Date.now();
  const s = await until(async () => {
    const now = await status();
    return now.persistedOutputs === outputs.length && now;
  }, `${outputs.length} outputs persisted`, 30_000, 20);
  say(`   all ${s.persistedOutputs} outputs persisted (${s.persistedFiles} files, ${s.persistedBytes} bytes) within ${Date.now() - t0} ms of the last commit`);

  say('3. reading partitions back the way FallbackStorage.read does (index longs at s*8 and e*8, then that data range)');
  const store = new FileStore(storeRoot);
  let checked = 0;
  for (const o of outputs) {
    const indexKey = fallbackKey(appId, 0, shuffleFileName(0, o.mapId, 'index'));
    for (let r = 0; r < 4; r++) {
      const idx = await buffer(await store.read(indexKey, { start: r * 8, end: r * 8 + 16 }));
      const [start, end] = [Number(idx.readBigInt64BE(0)), Number(idx.readBigInt64BE(8))];
      const bytes = end > start ? await buffer(await store.read(fallbackKey(appId, 0, shuffleFileName(0, o.mapId, 'data')), { start, end })) : Buffer.alloc(0);
      if (!bytes.equals(o.data.subarray(start, end))) throw new Error(`partition ${r} of map ${o.mapId} differs`);
      checked++;
    }
  }
  say(`   ${checked} partitions byte-identical; e.g. ${fallbackKey(appId, 0, shuffleFileName(0, '7', 'data'))}`);

  say('4. the executor stops: Spark deletes its blockmgr-* directory; the copies stay');
  await exec.stop();
  say(`   store still holds ${(await status()).persistedOutputs} outputs; point spark.storage.decommission.fallbackStorage.path at file:${storeRoot}/`);

  say('5. SIGTERM: the agent drains (nothing pending) and exits');
  const exited = new Promise<number | null>((ok) => child.once('exit', (code) => ok(code)));
  child.kill('SIGTERM');
  say(`   exit code ${await exited} (0: everything committed is stored)`);
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${String(err)}\n`);
  process.exit(1);
});
