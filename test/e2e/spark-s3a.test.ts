/**
 * The first kill test once more as users run it: the agent writes with its S3 store to
 * OpenStack Swift's s3api (which checks Content-MD5 and signed payloads), Spark reads the copies
 * through S3A (hadoop-aws and the AWS SDK it was built with), and the plugin verifies through
 * S3A too. One Spark line here; spark-read-s3a.test.ts runs s3a:// on both.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { AgentProcess } from '../kit/agent-process.js';
import { createBucket, rawClient, swiftS3, type S3Server } from '../kit/s3-servers.js';
import { pluginConf, s3aJars, SPARK_LINES, SparkDriver } from '../kit/spark-harness.js';
import { busiest } from '../support/spark-run.js';
import { tempDir } from '../kit/temp-dir.js';

const line = SPARK_LINES[0]!;
const MAPS = 8;
let swift: S3Server;
let cleanup: () => Promise<void>;
let dir: string;

beforeAll(async () => {
  swift = await swiftS3();
  const t = await tempDir('ssa-s3a-');
  dir = t.path;
  cleanup = t.cleanup;
}, 300_000);

afterAll(async () => {
  await cleanup?.();
});

it(`Spark ${line.version} over s3a:// to Swift: after a SIGKILL the next action reads the copies and runs no map task again`, async () => {
  const bucket = await createBucket(swift, 'spark');
  const local = join(dir, 'local');
  await mkdir(local);
  const s3a = {
    'spark.hadoop.fs.s3a.endpoint': swift.endpoint,
    'spark.hadoop.fs.s3a.path.style.access': 'true',
    'spark.hadoop.fs.s3a.connection.ssl.enabled': 'false',
    'spark.hadoop.fs.s3a.endpoint.region': 'us-east-1',
    'spark.hadoop.fs.s3a.access.key': swift.credentials.accessKeyId,
    'spark.hadoop.fs.s3a.secret.key': swift.credentials.secretAccessKey,
    'spark.hadoop.fs.s3a.aws.credentials.provider': 'org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider',
  };
  const driver = await SparkDriver.start(line, {
    localDir: local,
    jars: s3aJars(line),
    conf: { ...pluginConf(`s3a://${bucket}/fallback/`), ...s3a },
  });
  let agent: AgentProcess | undefined;
  try {
    agent = await AgentProcess.start(
      [
        '--local-dirs', local, '--local-dirs-layout', 'spark-*/executor-*', '--app-id', driver.appId,
        '--store', `s3://${bucket}/fallback`, '--s3-endpoint', swift.endpoint, '--s3-force-path-style',
        '--s3-checksums', 'when_required', '--s3-region', 'us-east-1',
      ],
      { env: { AWS_ACCESS_KEY_ID: swift.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: swift.credentials.secretAccessKey } },
    );
    await driver.ok({ cmd: 'define', name: 'a', rows: 40_000, maps: MAPS, reducers: 4, keys: 97, pad: 64 });
    expect(await driver.ok({ cmd: 'action', name: 'a' })).toMatchObject({ correct: true, mapPartitionsComputed: MAPS });
    await agent.waitForStatus((s) => Number(s.persistedOutputs) >= MAPS && Number(s.pendingOutputs) === 0, 60_000);

    // The agent wrote Spark's layout: <prefix>/<appId>/<shuffle>/<hash>/<file>.
    const client = rawClient(swift);
    const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `fallback/${driver.appId}/0/` }));
    client.destroy();
    const names = (listed.Contents ?? []).map((o) => (o.Key as string).split('/').pop());
    expect(names.filter((n) => n?.endsWith('.index'))).toHaveLength(MAPS);

    const before = await driver.counts();
    const [victim, held] = busiest(before.mapTasksByExecutor);
    await driver.killExecutor(victim);
    const m = await driver.waitForPlugin((x) => Number(x.executorsRecovered) >= 1);
    expect(m).toMatchObject({ outputsRepointed: held, outputsRecomputed: 0 });

    expect(await driver.ok({ cmd: 'action', name: 'a' })).toMatchObject({ correct: true, mapPartitionsComputed: MAPS });
    const after = await driver.counts();
    expect(after.mapTasks).toBe(MAPS);
    expect(after.failedStages).toBe(0);
  } finally {
    await driver.stop().catch(() => undefined);
    await agent?.stop('SIGKILL');
  }
}, 300_000);

it(`Spark ${line.version} with a store that cannot be read: the plugin falls back to recomputing, the job never fails`, async () => {
  const local = join(dir, 'local-unreadable');
  await mkdir(local);
  const driver = await SparkDriver.start(line, {
    localDir: local,
    jars: s3aJars(line),
    conf: {
      ...pluginConf('s3a://nowhere/fallback/'),
      // Nothing listens on port 1: every request of the plugin fails at once.
      'spark.hadoop.fs.s3a.endpoint': 'http://127.0.0.1:1',
      'spark.hadoop.fs.s3a.path.style.access': 'true',
      'spark.hadoop.fs.s3a.endpoint.region': 'us-east-1',
      'spark.hadoop.fs.s3a.access.key': 'k',
      'spark.hadoop.fs.s3a.secret.key': 's',
      'spark.hadoop.fs.s3a.aws.credentials.provider': 'org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider',
      'spark.hadoop.fs.s3a.attempts.maximum': '1',
      'spark.hadoop.fs.s3a.retry.limit': '1',
      'spark.hadoop.fs.s3a.retry.interval': '10ms',
      'spark.shuffleAgent.verify.timeout': '30s',
    },
  });
  try {
    await driver.ok({ cmd: 'define', name: 'a', rows: 40_000, maps: MAPS, reducers: 4, keys: 97, pad: 64 });
    await driver.ok({ cmd: 'action', name: 'a' });
    const [victim, held] = busiest((await driver.counts()).mapTasksByExecutor);
    await driver.killExecutor(victim);
    const m = await driver.waitForPlugin((x) => Number(x.executorsRecovered) >= 1);
    expect(m).toMatchObject({ outputsRepointed: 0, outputsRecomputed: held, storeErrors: held });
    expect(await driver.ok({ cmd: 'action', name: 'a' })).toMatchObject({ correct: true, mapPartitionsComputed: MAPS + held });
    expect((await driver.counts()).failedStages).toBe(0);
  } finally {
    await driver.stop().catch(() => undefined);
  }
}, 300_000);
