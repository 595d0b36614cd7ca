/**
 * `npm run bench:repoint`: how long the plugin's recovery takes for one executor holding 10,000
 * map outputs with valid copies in the fallback store, with 1, 8 and 32 verification threads.
 * Runs spark-plugin's RepointBench (a test class: it uses the plugin's package-private classes)
 * on the pinned pyspark 3.5.8's jars, against a file:// store in a temp dir and, with --s3,
 * against the one-node Swift s3api of scripts/swift-s3.sh through S3A.
 *
 * Usage: node dist/scripts/bench/repoint.js [--outputs 10000] [--threads 1,8,32] [--runs 5] [--s3]
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { BucketAlreadyOwnedByYou, CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { s3aJars, SPARK_LINES, sparkHome, type SparkLine } from '../spark-harness.js';

const args = process.argv.slice(2);
function opt(name: string, fallback: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? (args[i + 1] as string) : fallback;
}
const OUTPUTS = opt('outputs', '10000');
const THREADS = opt('threads', '1,8,32');
const RUNS = opt('runs', '5');
const here = dirname(fileURLToPath(import.meta.url));
// dist/scripts/bench -> repository root
const root = resolve(here, '..', '..', '..');
const target = join(root, 'spark-plugin', 'target');
// RepointBench is compiled against 3.5 (MapStatus.apply's signature differs on 4.x).
const SPARK_LINE = SPARK_LINES.find((l) => l.version === '3.5.8') as SparkLine;
const BUCKET = 'bench-repoint';

async function bench(base: string, extraCp: string[], hadoop: string[]): Promise<void> {
  const cp = [join(target, 'classes'), join(target, 'test-classes'), join(sparkHome(SPARK_LINE), 'jars', '*'), ...extraCp].join(':');
  console.log(`\n## ${base}: ${OUTPUTS} outputs, threads ${THREADS}, ${RUNS} runs; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  // Spark's and the plugin's INFO lines (one per re-pointed output from Spark's tracker, as on a
  // driver at the default level) go to stderr, discarded here.
  const child = spawn('java', ['-Xmx1g', '-cp', cp, 'io.github.sparkshuffleagent.RepointBench', base, OUTPUTS, THREADS, RUNS, ...hadoop], { stdio: ['ignore', 'inherit', 'ignore'] });
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  if (code !== 0) throw new Error(`RepointBench exited with ${code}`);
  console.log(`load average after: ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
}

async function main(): Promise<void> {
  if (!existsSync(join(target, 'test-classes', 'io', 'github', 'sparkshuffleagent', 'RepointBench.class'))) {
    throw new Error('build first: npm run build (needs Maven for the plugin)');
  }
  const dir = await mkdtemp(join(tmpdir(), 'bench-repoint-'));
  try {
    await bench(`file://${dir}/fallback`, [], []);
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
  await bench(`s3a://${BUCKET}/fallback`, s3aJars(SPARK_LINE), [
    `fs.s3a.endpoint=${endpoint}`,
    'fs.s3a.path.style.access=true',
    'fs.s3a.connection.ssl.enabled=false',
    'fs.s3a.endpoint.region=us-east-1',
    `fs.s3a.access.key=${credentials.accessKeyId}`,
    `fs.s3a.secret.key=${credentials.secretAccessKey}`,
    'fs.s3a.aws.credentials.provider=org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider',
  ]);
  console.log(`(bucket ${BUCKET} on ${endpoint} keeps the copies; the next run overwrites them)`);
}

await main();
