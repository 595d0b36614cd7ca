/**
 * The runtime image, built here and started. No container engine or registry is reachable, so
 * scripts/build-image.sh makes the Dockerfile's runtime stage from Debian packages and commits it
 * with buildah (vfs storage). This test then mounts the COMMITTED image (`buildah from` +
 * `buildah mount`), checks its config against the Dockerfile, and runs its entrypoint in new
 * mount/PID/IPC/UTS namespaces (not the network: the test reaches it on loopback) the way the
 * chart runs it: as the image's user with Spark's group as a supplementary group, no
 * capabilities, a read-only root and an emptyDir-like /tmp. The
 * agent must answer /healthz and /readyz, store an output Spark's uid committed, and exit on
 * SIGTERM.
 *
 * What it does not prove: that `docker build` of the Dockerfile works (its registry bases cannot
 * be pulled here; test/k8s/dockerfile.test.ts checks what it copies), nor anything about a
 * kubelet (probes, volumes, security admission).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { until } from '../kit/wait.js';
import { tempDir } from '../kit/temp-dir.js';
import { PLUGIN_JAR_IN_IMAGE } from '../k8s/plugin-jar.js';
import { AGENT_UID, SPARK_GID } from '../k8s/agent-uid.js';

const ROOT = join(import.meta.dirname, '..', '..');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const IMAGE = `localhost/spark-shuffle-agent:${VERSION}`;
const BUILDAH = ['--storage-driver', 'vfs'];
/** The first build on a machine makes the Debian base (minutes); later ones reuse it (scripts/machine-cache.sh). */
const BUILD_TIMEOUT_MS = 20 * 60_000;
const HTTP_PORT = 19464;

function run(cmd: string, args: string[], timeout = 120_000): string {
  const out = spawnSync(cmd, args, { encoding: 'utf8', timeout });
  if (out.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${out.status}: ${out.stderr}${out.error?.message ?? ''}`);
  return out.stdout;
}

interface ImageConfig {
  Entrypoint: string[];
  Cmd: string[];
  User: string;
  WorkingDir: string;
  Env: string[];
  ExposedPorts: Record<string, object>;
}

/** The Dockerfile's last stage: instruction -> arguments (continuations joined, comments dropped). */
function dockerfileRuntime(): Map<string, string[]> {
  const text = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const last = text.slice(text.lastIndexOf('\nFROM '));
  const out = new Map<string, string[]>();
  for (const line of last.replace(/\\\n/g, ' ').split('\n')) {
    const m = /^([A-Z]+)\s+(.*)$/.exec(line.trim());
    if (m) out.set(m[1] as string, [...(out.get(m[1] as string) ?? []), (m[2] as string).replace(/\s+/g, ' ')]);
  }
  return out;
}

describe('the runtime image (scripts/build-image.sh)', () => {
  let container = '';
  let rootfs = '';
  let config: ImageConfig;

  beforeAll(() => {
    const build = spawnSync('bash', [join(ROOT, 'scripts', 'build-image.sh')], { encoding: 'utf8', timeout: BUILD_TIMEOUT_MS });
    expect(build.status, `build-image.sh: ${build.stderr}`).toBe(0);
    const inspect = JSON.parse(run('buildah', [...BUILDAH, 'inspect', '--type', 'image', IMAGE])) as { OCIv1: { config: ImageConfig } };
    config = inspect.OCIv1.config;
    container = run('buildah', [...BUILDAH, 'from', '--quiet', '--pull-never', IMAGE]).trim();
    rootfs = run('buildah', [...BUILDAH, 'mount', container]).trim();
  }, BUILD_TIMEOUT_MS);

  afterAll(() => {
    if (container !== '') run('buildah', [...BUILDAH, 'rm', container]);
  });

  it('has the Dockerfile\'s runtime config: entrypoint, command, user, working dir, environment, ports', () => {
    const df = dockerfileRuntime();
    expect(config.Entrypoint).toEqual(JSON.parse(df.get('ENTRYPOINT')?.at(-1) as string));
    expect(config.Cmd).toEqual(JSON.parse(df.get('CMD')?.at(-1) as string));
    expect(config.User).toBe(df.get('USER')?.at(-1));
    expect(config.User).toBe(`${AGENT_UID}:${AGENT_UID}`);
    expect(config.WorkingDir).toBe(df.get('WORKDIR')?.at(-1));
    for (const kv of (df.get('ENV') ?? []).join(' ').split(' ')) expect(config.Env).toContain(kv);
    expect(Object.keys(config.ExposedPorts).sort()).toEqual((df.get('EXPOSE') ?? []).join(' ').split(' ').map((p) => `${p}/tcp`).sort());
  });

  it('runs Node 24 and holds the Java 11 plugin jar at its documented, version-free path', () => {
    expect(run('chroot', [rootfs, '/usr/local/bin/node', '--version']).trim()).toMatch(/^v24\./);
    const jar = join(rootfs, PLUGIN_JAR_IN_IMAGE);
    expect(existsSync(jar), PLUGIN_JAR_IN_IMAGE).toBe(true);
    // The manifest names the version; the plugin's classes are Java 11 (class file major 55).
    const probe = run('python3', ['-c', [
      'import sys, zipfile, struct',
      'z = zipfile.ZipFile(sys.argv[1])',
      'm = z.read("META-INF/MANIFEST.MF").decode()',
      'c = z.read("io/github/sparkshuffleagent/ShuffleAgentPlugin.class")',
      'print([l.split(": ")[1] for l in m.splitlines() if l.startswith("Implementation-Version")][0], struct.unpack(">H", c[6:8])[0])',
    ].join('\n'), jar]).trim();
    expect(probe).toBe(`${VERSION} 55`);
    // The user the image runs as exists, in Spark's group.
    expect(readFileSync(join(rootfs, 'etc', 'group'), 'utf8')).toMatch(new RegExp(`^spark:x:${SPARK_GID}:shuffle-agent$`, 'm'));
  });

  it('its entrypoint, started as the image user in its own namespaces with a read-only root, answers /healthz and /readyz, stores what Spark\'s uid committed (default and group-only modes), and exits 0 on SIGTERM', async () => {
    const t = await tempDir('ssa-image-');
    let agent: ChildProcess | undefined;
    try {
      // An executor's local dir as Spark (uid 185) leaves it: one map output with the default
      // umask's modes (0755 directories, 0644 files), one in group-only directories (0770, files
      // 0640: push-based shuffle, spark.shuffle.service.removeShuffle), readable to the agent
      // only through Spark's group.
      const local = join(t.path, 'local');
      const store = join(t.path, 'store');
      mkdirSync(local);
      mkdirSync(store);
      chownSync(local, 185, 185);
      chmodSync(local, 0o755);
      const commit = (blockmgr: string, shuffle: number, dirMode: number, fileMode: number): void => {
        const top = join(local, blockmgr);
        const sub = join(top, '0c');
        mkdirSync(sub, { recursive: true });
        writeFileSync(join(sub, `shuffle_${shuffle}_0_0.data`), Buffer.alloc(10, 1));
        const index = Buffer.alloc(16);
        index.writeBigInt64BE(10n, 8);
        writeFileSync(join(sub, `shuffle_${shuffle}_0_0.index`), index);
        for (const f of [`shuffle_${shuffle}_0_0.data`, `shuffle_${shuffle}_0_0.index`]) {
          chownSync(join(sub, f), 185, 185);
          chmodSync(join(sub, f), fileMode);
        }
        for (const d of [top, sub]) {
          chownSync(d, 185, 185);
          chmodSync(d, dirMode);
        }
      };
      commit('blockmgr-0b1c2d3e-0000-4000-8000-000000000000', 0, 0o755, 0o644);
      commit('blockmgr-0b1c2d3e-0000-4000-8000-000000000001', 1, 0o770, 0o640);
      // The store is the agent's to write (a bucket in production).
      chownSync(store, AGENT_UID, AGENT_UID);
      chmodSync(t.path, 0o755);

      // The container, as a kubelet would set it up: new mount, PID, IPC and UTS namespaces (the
      // host's network, so the test reaches it on loopback), the image's root read-only, /proc,
      // a minimal /dev, tmpfs /tmp (the emptyDir), the executor's dir read-only and the store
      // under /mnt, then the entrypoint as the image's user with Spark's group added (as the
      // chart's supplementalGroups do) and only the image's environment. A non-root uid keeps no
      // capability. (crun, the OCI runtime, refuses this machine's hybrid cgroup layout.)
      const [uid, gid] = config.User.split(':');
      const setup = [
        'R=$1; shift',
        'mount --make-rprivate /',
        'mount --bind "$R" "$R"; mount -o remount,bind,ro "$R"',
        'mount -t proc proc "$R/proc"',
        'mount -t tmpfs -o nosuid,mode=755,size=1m tmpfs "$R/dev"',
        'for d in null zero random urandom; do touch "$R/dev/$d"; mount --bind "/dev/$d" "$R/dev/$d"; done',
        'mount -t tmpfs -o nosuid,nodev,mode=1777,size=64m tmpfs "$R/tmp"',
        'mount -t tmpfs -o nosuid,nodev,mode=755,size=1m tmpfs "$R/mnt"',
        'mkdir "$R/mnt/local" "$R/mnt/store"',
        `mount --bind "${local}" "$R/mnt/local"; mount -o remount,bind,ro "$R/mnt/local"`,
        `mount --bind "${store}" "$R/mnt/store"`,
        `cd "$R${config.WorkingDir}"`,
        `exec chroot --userspec=${uid}:${gid} --groups=${SPARK_GID} "$R" /usr/bin/env -i "$@"`,
      ].join('\n');
      const env = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', ...config.Env];
      const args = [...config.Entrypoint, ...config.Cmd, '--local-dirs=/mnt/local', '--store=file:///mnt/store', '--app-id=app-20261206000000-0000',
        `--http-listen=127.0.0.1:${HTTP_PORT}`, '--grpc-listen=127.0.0.1:0', '--rescan-interval=1'];
      const logs: string[] = [];
      agent = spawn('unshare', ['--mount', '--pid', '--ipc', '--uts', '--fork', '--kill-child', 'sh', '-ec', setup, 'container', rootfs, ...env, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      agent.stdout?.on('data', (b: Buffer) => logs.push(b.toString()));
      agent.stderr?.on('data', (b: Buffer) => logs.push(b.toString()));
      const exited = new Promise<number | null>((r) => agent?.on('exit', (code) => r(code)));

      const get = async (path: string): Promise<number> => (await fetch(`http://127.0.0.1:${HTTP_PORT}${path}`)).status;
      const ok = (path: string) => async (): Promise<true | undefined> => ((await get(path).catch(() => 0)) === 200 ? true : undefined);
      await until(ok('/healthz'), '/healthz 200', 60_000).catch((err: Error) => {
        throw new Error(`${err.message}; agent output:\n${logs.join('')}`);
      });
      expect(await get('/healthz')).toBe(200);
      await until(ok('/readyz'), '/readyz 200', 30_000);
      // The image's inotifywait watches the NN directories (fs.watch is only the fallback).
      const metrics = await (await fetch(`http://127.0.0.1:${HTTP_PORT}/metrics`)).text();
      expect(metrics).toMatch(/^shuffle_agent_file_events_backend\{backend="inotifywait"\} 1$/m);

      // Both outputs Spark's uid wrote reached the store, written by the agent's uid.
      const app = join(store, 'app-20261206000000-0000');
      const storedFiles = (): string[] =>
        spawnSync('find', [app, '-name', 'shuffle_*', '-printf', '%f %U %s\n'], { encoding: 'utf8' }).stdout.trim().split('\n').filter((l) => l !== '').sort();
      await until(async () => (storedFiles().length === 4 ? true : undefined), 'both outputs in the store', 30_000).catch((err: Error) => {
        throw new Error(`${err.message} (stored: ${storedFiles().join(', ')}); agent output:\n${logs.join('')}`);
      });
      expect(storedFiles()).toEqual([
        `shuffle_0_0_0.data ${AGENT_UID} 10`,
        `shuffle_0_0_0.index ${AGENT_UID} 16`,
        `shuffle_1_0_0.data ${AGENT_UID} 10`,
        `shuffle_1_0_0.index ${AGENT_UID} 16`,
      ]);

      // SIGTERM to the agent (PID 1 of its namespace, unshare's child), as the kubelet sends it.
      const child = Number(readFileSync(`/proc/${agent.pid}/task/${agent.pid}/children`, 'utf8').trim());
      expect(readFileSync(`/proc/${child}/cmdline`, 'utf8').split('\0')).toContain(config.Entrypoint.at(-1));
      process.kill(child, 'SIGTERM');
      expect(await exited).toBe(0);
      agent = undefined;
    } finally {
      if (agent?.pid !== undefined) {
        // The container's PID 1 first: its parent-death signal does not survive chroot's change
        // of user, so killing unshare alone would leave it running.
        const kids = existsSync(`/proc/${agent.pid}/task/${agent.pid}/children`) ? readFileSync(`/proc/${agent.pid}/task/${agent.pid}/children`, 'utf8') : '';
        for (const pid of kids.trim().split(/\s+/).filter((p) => p !== '')) process.kill(Number(pid), 'SIGKILL');
        agent.kill('SIGKILL');
      }
      await t.cleanup();
    }
  }, 180_000);
});
