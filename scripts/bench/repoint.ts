/**
 * `npm run bench:repoint`: how long the plugin's recovery takes for one executor holding 10,000
 * map outputs with valid copies in the fallback store, with 1, 8 and 32 verification threads.
 * Runs spark-plugin's RepointBench (a test class: it uses the plugin's package-private classes)
 * on the pinned pyspark 3.5.8's jars, against a file:// store in a temp dir and, with --s3,
 * against the one-node Swift s3api of scripts/swift-s3.sh through S3A. S3A writes the copies
 * there at about 4 outputs/s on this machine (five requests per object), so the S3 run is
 * smaller (--s3-outputs) and uses only the in-memory registry.
 *
 * Usage: node dist/scripts/bench/repoint.js [--outputs 10000] [--threads 1,8,32] [--runs 5]
 *          [--s3 [--s3-outputs 1000] [--s3-threads 8,32] [--s3-runs 2]]
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { BucketAlreadyOwnedByYou, CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { s3aJars, sparkHome, sparkLine } from '../../test/kit/spark-harness.js';
import { flag } from './args.js';

const args = process.argv.slice(2);
const here = dirname(fileURLToPath(import.meta.url));
// dist/scripts/bench -> repository root
const root = resolve(here, '..', '..', '..');
const target = join(root, 'spark-plugin', 'target');
interface Plan {
  outputs: string;
  threads: string;
  runs: string;
  /** RepointBench's registries: memory (the plugin's own cost), spark (Spark's tracker). */
  registries: string;
}

const FILE_PLAN: Plan = { outputs: flag('outputs', '10000'), threads: flag('threads', '1,8,32'), runs: flag('runs', '5'), registries: 'memory,spark' };
const S3_PLAN: Plan = { outputs: flag('s3-outputs', '1000'), threads: flag('s3-threads', '8,32'), runs: flag('s3-runs', '2'), registries: 'memory' };
// RepointBench is compiled against 3.5 (MapStatus.apply's signature differs on 4.x).
const SPARK_LINE = sparkLine('3.5.8');
const BUCKET = 'bench-repoint';

async function bench(base: string, plan: Plan, extraCp: string[], hadoop: string[]): Promise<void> {
  const cp = [join(target, 'classes'), join(target, 'test-classes'), join(sparkHome(SPARK_LINE), 'jars', '*'), ...extraCp].join(':');
  console.log(`\n## ${base}: ${plan.outputs} outputs, threads ${plan.threads}, ${plan.runs} runs, registries ${plan.registries}; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  // Spark's and the plugin's log lines (Spark's tracker logs one INFO line per re-pointed output,
  // as on a driver at the default level) go to a file.
  const logPath = join(root, 'bench', 'out', `repoint-${base.split(':')[0]}.stderr.log`);
  await mkdir(dirname(logPath), { recursive: true });
  const log = await open(logPath, 'w');
  const child = spawn('java', ['-Xmx1g', '-cp', cp, 'io.github.sparkshuffleagent.RepointBench', base, plan.outputs, plan.threads, plan.runs, plan.registries, ...hadoop], { stdio: ['ignore', 'inherit', log.fd] });
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  await log.close();
  if (code !== 0) throw new Error(`RepointBench exited with ${code}; its log: ${logPath}`);
  console.log(`load average after: ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
}

async function main(): Promise<void> {
  if (!existsSync(join(target, 'test-classes', 'io', 'github', 'sparkshuffleagent', 'RepointBench.class'))) {
    throw new Error('build first: npm run build (needs Maven for the plugin)');
  }
  const dir = await mkdtemp(join(tmpdir(), 'bench-repoint-'));
  try {
    await bench(`file://${dir}/fallback`, FILE_PLAN, [], []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  if (!args.includes('--s3')) return;
  const { stdout } = await promisify(execFile)('bash', [join(root, 'scripts', 'swift-s3.sh'), 'start']);
  const endpoint = stdout.trim().split('\n').at(-1) as string;
  const credentials = { accessKeyId: 'test:tester', secretAccessKey: 'testing' };
  const s3 = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials });
  try {
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
  } catch (e) {
    if (!(e instanceof BucketAlreadyOwnedByYou)) throw e; // a previous run's: its keys are overwritten
  } finally {
    s3.destroy();
  }
  await bench(`s3a://${BUCKET}/fallback`, S3_PLAN, s3aJars(SPARK_LINE), [
    `fs.s3a.endpoint=${endpoint}`,
    'fs.s3a.path.style.access=true',
    'fs.s3a.connection.ssl.enabled=false',
    'fs.s3a.endpoint.region=us-east-1',
    `fs.s3a.access.key=${credentials.accessKeyId}`,
    `fs.s3a.secret.key=${credentials.secretAccessKey}`,
    'fs.s3a.aws.credentials.provider=org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider',
    // Swift breaks the pipe on S3A's V4-signed PUTs (AWS SDK v1 streams them aws-chunked, which
    // Swift refuses); V2 signing writes plain bodies. The reads being timed cost the same requests.
    'fs.s3a.signing-algorithm=S3SignerType',
  ]);
  console.log(`(bucket ${BUCKET} on ${endpoint} keeps the copies; the next run overwrites them)`);
}

await main();
