/**
 * The grpc-java client of the interop test and the serve benchmark
 * (test/kit/java/ShuffleAgentJavaClient.java), built from Debian's packages: stubs generated
 * from proto/ with protoc and grpc_java_plugin, compiled with javac once into a cache directory
 * keyed by the proto, the source and the classpath (protoc + javac take seconds; repeated runs and
 * the benchmark reuse it), then run with `java`. Missing packages are an error that names them.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { access, mkdir, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './repo-root.js';

const run = promisify(execFile);

const PROTO_DIR = join(ROOT, 'proto');
const PROTO = join(PROTO_DIR, 'shuffle_agent.proto');
const SOURCE = join(ROOT, 'test', 'kit', 'java', 'ShuffleAgentJavaClient.java');
const MAIN_CLASS = 'ShuffleAgentJavaClient';
const JARS_DIR = '/usr/share/java';
const GRPC_JAVA_PLUGIN = '/usr/bin/grpc_java_plugin';

/**
 * Runtime jars and their Debian packages. Netty jar by jar: Debian's netty-all.jar is empty.
 * guava also needs naming: libgrpc-java does not depend on it.
 */
const JARS: ReadonlyArray<readonly [jar: string, pkg: string]> = [
  ...['grpc-api', 'grpc-context', 'grpc-core', 'grpc-netty', 'grpc-protobuf', 'grpc-protobuf-lite', 'grpc-stub'].map((j) => [j, 'libgrpc-java'] as const),
  ['protobuf', 'libprotobuf-java'],
  ['guava', 'libguava-java'],
  ['perfmark-api', 'libperfmark-java'],
  // grpc-core parses service configs with gson.
  ['gson', 'libgoogle-gson-java'],
  // javax.annotation.Generated, on the generated stubs.
  ['geronimo-annotation-1.3-spec', 'libgeronimo-annotation-1.3-spec-java'],
  ...['netty-buffer', 'netty-codec', 'netty-codec-http', 'netty-codec-http2', 'netty-common', 'netty-handler', 'netty-resolver', 'netty-transport'].map(
    (j) => [j, 'libnetty-java'] as const,
  ),
];

/** JVM flags for the short runs of the test: start fast, skip the optimising compiler. */
const QUICK_JVM = ['-XX:TieredStopAtLevel=1', '-XX:+UseSerialGC'];

const CLASSPATH_JARS = JARS.map(([jar]) => join(JARS_DIR, `${jar}.jar`));

let built: Promise<string> | undefined;

/** The compiled client's class directory; compiles it on the first call of this process. */
function classesDir(): Promise<string> {
  built ??= build();
  return built;
}

async function missingPackages(): Promise<string[]> {
  const missing = new Set<string>();
  const tool = (cmd: string, args: string[], pkg: string): Promise<void> =>
    run(cmd, args).then(
      () => undefined,
      () => void missing.add(pkg),
    );
  await Promise.all([
    tool('java', ['-version'], 'openjdk-17-jdk-headless'),
    tool('javac', ['-version'], 'openjdk-17-jdk-headless'),
    tool('protoc', ['--version'], 'protobuf-compiler'),
    access(GRPC_JAVA_PLUGIN).catch(() => void missing.add('protobuf-compiler-grpc-java-plugin')),
    ...JARS.map(([jar, pkg]) => access(join(JARS_DIR, `${jar}.jar`)).catch(() => void missing.add(pkg))),
  ]);
  return [...missing];
}

async function build(): Promise<string> {
  const missing = await missingPackages();
  if (missing.length > 0) {
    throw new Error(
      `the Java gRPC client's toolchain is missing (apt-get install -y --no-install-recommends ${missing.join(' ')})${process.env.CI === 'true' ? ' in CI' : ''}`,
    );
  }
  const [proto, source] = await Promise.all([readFile(PROTO), readFile(SOURCE)]);
  const key = createHash('sha256').update(proto).update('\0').update(source).update('\0').update(CLASSPATH_JARS.join(':')).digest('hex').slice(0, 16);
  const dir = join(tmpdir(), `shuffle-agent-java-${key}`);
  const classes = join(dir, 'classes');
  if (await access(join(classes, `${MAIN_CLASS}.class`)).then(() => true, () => false)) return classes;

  // Built aside and renamed into place, so that a concurrent process never sees half a build.
  const staging = `${dir}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    const gen = join(staging, 'gen');
    await mkdir(gen, { recursive: true });
    await run('protoc', ['-I', PROTO_DIR, `--java_out=${gen}`, `--plugin=protoc-gen-grpc-java=${GRPC_JAVA_PLUGIN}`, `--grpc-java_out=${gen}`, PROTO]);
    const generated = (await readdir(gen, { recursive: true })).filter((f) => f.endsWith('.java')).map((f) => join(gen, f));
    await run('javac', ['-nowarn', '-encoding', 'UTF-8', '-cp', CLASSPATH_JARS.join(':'), '-d', join(staging, 'classes'), ...generated, SOURCE], { maxBuffer: 16 << 20 });
    await writeFile(join(staging, 'SOURCES'), `${PROTO}\n${SOURCE}\n`);
    await rename(staging, dir).catch(async (err: NodeJS.ErrnoException) => {
      // Another process finished first: use its build.
      if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
    });
  } catch (err) {
    throw new Error(`compile the Java gRPC client (${SOURCE})`, { cause: err });
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
  return classes;
}

/**
 * `java` and its arguments up to the client's mode (append the mode and its arguments), with the
 * JVM's defaults: for the benchmark, which warms up and wants the optimising compiler.
 */
export async function javaClientCommand(): Promise<{ command: string; args: string[] }> {
  const classes = await classesDir();
  return { command: 'java', args: ['-cp', [classes, ...CLASSPATH_JARS].join(':'), MAIN_CLASS] };
}

/** Runs one mode of the client (JVM tuned for short runs); returns its last stdout line, parsed. */
export async function javaClient(...args: string[]): Promise<unknown> {
  const { command, args: base } = await javaClientCommand();
  const { stdout } = await run(command, [...QUICK_JVM, ...base, ...args], { maxBuffer: 1 << 20, timeout: 60_000 });
  return JSON.parse(stdout.trim().split('\n').at(-1) as string);
}
