/**
 * Issue 16, point 3, on S3 as users run it: the agent writes to OpenStack Swift's s3api, Spark
 * (with the plugin and its read path) reaches the same store through S3A and a fault proxy
 * (test/kit/fault-proxy.ts). After an executor is SIGKILLed and its outputs re-pointed, the
 * store throttles (503 SlowDown on a third of the GETs: the reads are retried, nothing is
 * recomputed) and then goes away (the proxy closes: the job still finishes, recomputing exactly
 * the lost executor's outputs). Both Spark lines: 3.5.8 with hadoop-aws 3.3.4 (AWS SDK v1),
 * 4.1.1 with hadoop-aws 3.4.2 (AWS SDK v2 modules), fetched by scripts/setup-test-env.sh.
 *
 * Two apps per line: one with the read path's defaults, where each executor fetches a small data
 * object whole once (`read.wholeObjectMaxBytes`, 8 MiB) and reads its blocks from local disk, serves
 * both tests (the second needs the store gone for good, so it runs last); one with
 * `read.wholeObjectMaxBytes=0`, where every block is its own ranged GET, runs the throttling test.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentProcess } from '../kit/agent-process.js';
import { FaultProxy } from '../kit/fault-proxy.js';
import { busiestOf, computed, countersWhen, currentOutputs, killAndRepoint, labels, pluginCounters } from '../support/map-outputs.js';
import { createBucket, swiftS3, type S3Server } from '../kit/s3-servers.js';
import { pluginConf, s3aJars, SPARK_LINES, SparkDriver } from '../kit/spark-harness.js';
import { MAPS, SHUFFLE, SPARK_TEST_TIMEOUT } from '../support/spark-run.js';
import { tempDir } from '../kit/temp-dir.js';

const T = SPARK_TEST_TIMEOUT;

const CASES = SPARK_LINES.flatMap((line) => [
  { line, version: line.version, mode: 'whole small objects on local disk (defaults)', wholeObjectMax: '8m' },
  { line, version: line.version, mode: 'one ranged GET per block', wholeObjectMax: '0' },
]);

describe.each(CASES)('Spark $version over s3a:// through a fault proxy, $mode: the store throttles, then goes away', ({ line, wholeObjectMax }) => {
  const perBlock = wholeObjectMax === '0';
  let swift: S3Server;
  let proxy: FaultProxy;
  let driver: SparkDriver;
  let agent: AgentProcess;
  let cleanup: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    swift = await swiftS3();
    const bucket = await createBucket(swift, 'read');
    proxy = await FaultProxy.start(swift.endpoint);
    const t = await tempDir('ssa-read-s3a-');
    cleanup = t.cleanup;
    const local = join(t.path, 'local');
    await mkdir(local);
    driver = await SparkDriver.start(line, {
      localDir: local,
      jars: s3aJars(line),
      conf: {
        ...pluginConf(`s3a://${bucket}/fallback/`),
        'spark.shuffleAgent.read.wholeObjectMaxBytes': wholeObjectMax,
        'spark.hadoop.fs.s3a.endpoint': proxy.endpoint,
        'spark.hadoop.fs.s3a.path.style.access': 'true',
        'spark.hadoop.fs.s3a.connection.ssl.enabled': 'false',
        'spark.hadoop.fs.s3a.endpoint.region': 'us-east-1',
        'spark.hadoop.fs.s3a.access.key': swift.credentials.accessKeyId,
        'spark.hadoop.fs.s3a.secret.key': swift.credentials.secretAccessKey,
        'spark.hadoop.fs.s3a.aws.credentials.provider': 'org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider',
        // S3A's own retries (minutes of back-off by default) cut to one: a store that is gone
        // fails fast. A throttled GET is retried by S3A first, then by the read path.
        'spark.hadoop.fs.s3a.attempts.maximum': '1',
        'spark.hadoop.fs.s3a.retry.limit': '1',
        'spark.hadoop.fs.s3a.retry.interval': '10ms',
        'spark.hadoop.fs.s3a.retry.throttle.limit': '1',
        'spark.hadoop.fs.s3a.retry.throttle.interval': '10ms',
        'spark.hadoop.fs.s3a.connection.establish.timeout': '2000',
      },
    });
    agent = await AgentProcess.start(
      [
        '--local-dirs', local, '--local-dirs-layout', 'spark-*/executor-*', '--app-id', driver.appId,
        '--store', `s3://${bucket}/fallback`, '--s3-endpoint', swift.endpoint, '--s3-force-path-style',
        '--s3-checksums', 'when_required', '--s3-region', 'us-east-1', '--rescan-interval', '5',
      ],
      { env: { AWS_ACCESS_KEY_ID: swift.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: swift.credentials.secretAccessKey } },
    );
  }, T);

  afterAll(async () => {
    await driver?.stop().catch(() => undefined);
    await agent?.stop('SIGKILL').catch(() => undefined);
    await proxy?.close().catch(() => undefined);
    await cleanup?.();
  });

  /** Define a shuffle, run it once, and wait until the agent stored every map output so far. */
  async function computeAndStore(name: string): Promise<void> {
    await driver.ok({ ...SHUFFLE, name });
    expect(await driver.ok({ cmd: 'action', name })).toMatchObject({ correct: true, mapPartitionsComputed: MAPS });
    const n = (await driver.counts()).mapOutputs.length;
    await agent.waitForStatus((s) => Number(s.persistedOutputs) >= n && Number(s.pendingOutputs) === 0, 60_000);
  }

  it('503 SlowDown on a third of the GETs after the re-point: the reads are retried, no map task runs again', async () => {
    await computeAndStore('throttled');
    const before = await driver.counts();
    const shuffle = Number((await driver.ok({ cmd: 'shuffleId', name: 'throttled' })).shuffleId);
    const [victim] = busiestOf(currentOutputs(before, shuffle));
    await killAndRepoint(driver, victim, before);

    const read = await pluginCounters(driver);
    let gets = 0;
    // The byte ranges each data object was asked for (answered GETs only: a refused one is asked
    // again); a GET without a closed range counts as [-1, ∞).
    const ranges = new Map<string, Array<[number, number]>>();
    // Index objects: the executor knows their length from the shuffle's reduce partitions, so it
    // GETs them without a HEAD.
    const index = { HEAD: 0, GET: 0 };
    proxy.plan = (r) => {
      const isIndex = r.url.split('?')[0]!.endsWith('.index');
      if (isIndex && (r.method === 'HEAD' || r.method === 'GET')) index[r.method]++;
      if (r.method !== 'GET') return undefined;
      if (++gets % 3 === 0) return 'slowdown-503';
      if (r.url.split('?')[0]!.endsWith('.data')) {
        const m = /^bytes=(\d+)-(\d+)$/.exec(r.range ?? '');
        ranges.set(r.url, [...(ranges.get(r.url) ?? []), m ? [Number(m[1]), Number(m[2])] : [-1, Infinity]]);
      }
      return undefined;
    };
    try {
      expect(await driver.ok({ cmd: 'action', name: 'throttled' })).toMatchObject({ correct: true, mapPartitionsComputed: MAPS });
    } finally {
      proxy.plan = () => undefined;
    }
    expect(proxy.injected['slowdown-503']).toBeGreaterThan(0);
    expect(ranges.size).toBeGreaterThan(0);
    expect(index.GET).toBeGreaterThan(0);
    expect(index.HEAD).toBe(0);
    for (const [url, rs] of ranges) {
      const distinct = [...new Map(rs.map(([a, b]) => [`${a}-${b}`, [a, b] as const])).values()].sort((x, y) => x[0] - y[0]);
      expect(distinct[0]![0], `${url}: a GET without a closed range`).toBeGreaterThanOrEqual(0);
      if (perBlock) {
        // One request per block asks for exactly that block: no readahead past it (S3A's default
        // readahead would ask every GET for 64 KiB or the object's rest, overlapping the next blocks).
        for (let i = 1; i < distinct.length; i++) {
          expect(distinct[i]![0], `${url}: ranges ${JSON.stringify(distinct)} overlap`).toBeGreaterThan(distinct[i - 1]![1]);
        }
      } else {
        // The whole object, once per reading executor (two survivors and the replacement).
        expect(distinct, url).toHaveLength(1);
        expect(distinct[0]![0], url).toBe(0);
        expect(rs.length, url).toBeLessThanOrEqual(3);
      }
    }
    const after = await driver.counts();
    expect(computed(after, before)).toEqual([]);
    expect(after.fetchFailures).toBe(before.fetchFailures);
    expect(after.failedStages).toBe(before.failedStages);
    // The plugin's read path read the copies, and no read failed for good: every refused GET was
    // retried (here by S3A's one throttle retry; the read path's own retries come after it).
    const now = await countersWhen(driver, (c) => c('fallbackBlocksRead') > read('fallbackBlocksRead'));
    expect(now('fallbackReadFailures')).toBe(read('fallbackReadFailures'));
    expect(now('readFailuresReported')).toBe(read('readFailuresReported'));
  }, T);

  if (!perBlock) it('the store unreachable after the re-point: the job finishes, exactly the lost outputs are recomputed, the app stops promptly', async () => {
    await computeAndStore('unreachable');
    const before = await driver.counts();
    const shuffle = Number((await driver.ok({ cmd: 'shuffleId', name: 'unreachable' })).shuffleId);
    const [victim, held] = busiestOf(currentOutputs(before, shuffle));
    await killAndRepoint(driver, victim, before);

    await proxy.close(); // connections refused from now on
    expect(await driver.ok({ cmd: 'action', name: 'unreachable' })).toMatchObject({ correct: true, mapPartitionsComputed: MAPS + held.length });
    const after = await driver.counts();
    expect(labels(computed(after, before))).toEqual(labels(held));
    expect(after.removedExecutors).toEqual([...before.removedExecutors, victim]);

    // Stopping does not wait on the store the plugin cannot reach (its heartbeat, clean-up).
    const t0 = Date.now();
    await driver.stop();
    expect(Date.now() - t0).toBeLessThan(20_000);
  }, T);
});
