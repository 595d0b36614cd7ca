/**
 * The Dockerfile cannot be built on these machines (no registry for its bases; test/image/ builds
 * the same runtime image from Debian packages and starts it), so what can be checked without
 * building is checked here: every file it copies exists and survives .dockerignore, the
 * build runs the same `npm run build` that produces package.json's bin, the runtime stage gets
 * production dependencies only, runs as the non-root uid the manifests use, and its entrypoint
 * is the built CLI.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, posix, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import type { IDaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { RUN_OPTIONS } from '../../agent/config/run-options.js';
import { PLUGIN_JAR_IN_IMAGE } from './plugin-jar.js';

const ROOT = resolve(import.meta.dirname, '../..');

interface Instruction {
  stage: number;
  op: string;
  args: string;
}

interface Stage {
  name: string;
  from: string;
}

/** Instructions with line continuations joined and comments dropped, each tagged with its stage. */
function parseDockerfile(text: string): { stages: Stage[]; instructions: Instruction[]; args: Map<string, string> } {
  const logical: string[] = [];
  let current = '';
  for (const line of text.split('\n')) {
    if (/^\s*#/.test(line) && current === '') continue;
    if (line.trimEnd().endsWith('\\')) {
      current += line.trimEnd().slice(0, -1) + ' ';
      continue;
    }
    current += line;
    if (current.trim() !== '') logical.push(current.trim());
    current = '';
  }
  const stages: Stage[] = [];
  const instructions: Instruction[] = [];
  const args = new Map<string, string>();
  for (const l of logical) {
    const m = /^(\w+)\s+(.*)$/s.exec(l);
    expect(m, `instruction: ${l}`).not.toBeNull();
    const op = (m?.[1] as string).toUpperCase();
    const rest = (m?.[2] as string).replace(/\s+/g, ' ').trim();
    if (op === 'ARG' && stages.length === 0) {
      const [k, v] = rest.split('=');
      args.set(k as string, v ?? '');
    }
    if (op === 'FROM') {
      const f = /^(\S+)(?: AS (\S+))?$/i.exec(rest);
      stages.push({ from: f?.[1] as string, name: f?.[2] ?? String(stages.length) });
    }
    instructions.push({ stage: stages.length - 1, op, args: rest });
  }
  return { stages, instructions, args };
}

/** .dockerignore semantics for a relative path: the last pattern matching it or a parent decides. */
function dockerIncluded(patterns: readonly string[], path: string): boolean {
  const parts = path.split('/');
  const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let included = true;
  for (const raw of patterns) {
    const negate = raw.startsWith('!');
    const glob = (negate ? raw.slice(1) : raw).replace(/\/+$/, '');
    const re = new RegExp(
      '^' +
        glob
          .split('**')
          .map((s) => s.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]'))
          .join('.*') +
        '$',
    );
    if (candidates.some((c) => re.test(c))) included = negate;
  }
  return included;
}

const DOCKERFILE = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
const IGNORE = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'));
const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  type: string;
  files: string[];
  dependencies: Record<string, string>;
  bin: Record<string, string>;
  scripts: Record<string, string>;
};
const FINAL = DOCKERFILE.stages.length - 1;

function inStage(stage: number, op: string): Instruction[] {
  return DOCKERFILE.instructions.filter((i) => i.stage === stage && i.op === op);
}

function copies(stage: number): { from?: string; sources: string[]; dest: string }[] {
  return inStage(stage, 'COPY').map((i) => {
    const words = i.args.split(' ');
    const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
    const paths = words.filter((w) => !w.startsWith('--'));
    return { ...(from ? { from } : {}), sources: paths.slice(0, -1), dest: paths[paths.length - 1] as string };
  });
}

describe('Dockerfile', () => {
  it('is multi-stage on Node 24 (the Node the tests run the agent on), the Spark plugin built by Maven on JDK 17 for Java 11', () => {
    expect(DOCKERFILE.stages.map((s) => s.name)).toEqual(['build', 'deps', 'plugin', 'runtime']);
    const image = DOCKERFILE.args.get('NODE_IMAGE') as string;
    expect(image).toMatch(/^node:24[.-]/);
    // The same major as the tests' Node (scripts/setup-test-env.sh) and the image script's.
    const setup = readFileSync(join(ROOT, 'scripts', 'setup-test-env.sh'), 'utf8');
    expect(/^NODE_WHEEL=(\d+)\./m.exec(setup)?.[1]).toBe('24');
    expect(/^NODE_VERSION=(\d+)\./m.exec(readFileSync(join(ROOT, 'scripts', 'build-image.sh'), 'utf8'))?.[1]).toBe('24');
    // The bytecode level is the pom's, not the build image's JDK.
    expect(readFileSync(join(ROOT, 'spark-plugin', 'pom.xml'), 'utf8')).toContain('<maven.compiler.release>11</maven.compiler.release>');
    for (const s of DOCKERFILE.stages.filter((st) => st.name !== 'plugin')) expect(s.from).toBe('${NODE_IMAGE}');
    expect(DOCKERFILE.args.get('MAVEN_IMAGE')).toMatch(/^maven:3[.\d]*-eclipse-temurin-17/);
    const plugin = DOCKERFILE.stages.findIndex((s) => s.name === 'plugin');
    expect(DOCKERFILE.stages[plugin]?.from).toBe('${MAVEN_IMAGE}');
    expect(inStage(plugin, 'RUN').map((r) => r.args).join(' ')).toMatch(/^mvn -q -B package /);
  });

  it('the tests run the agent on the Node major the image ships (npm test runs vitest through scripts/node-24.sh)', () => {
    const image = DOCKERFILE.args.get('NODE_IMAGE') as string;
    // Every agent a test starts is process.execPath.
    expect(`node:${process.versions.node.split('.')[0]}`, 'run the tests with `npm test` or `bash scripts/node-24.sh npx vitest ...`').toBe(/^node:\d+/.exec(image)?.[0]);
  });

  it('puts the plugin jar at the fixed, version-free path the pod templates copy it from', () => {
    const jar = copies(FINAL).find((c) => c.from === 'plugin');
    const plugin = DOCKERFILE.stages.findIndex((s) => s.name === 'plugin');
    // The Maven stage copies the main jar (not -tests.jar) to the name the runtime stage takes.
    const run = inStage(plugin, 'RUN').map((r) => r.args).join(' ');
    expect(run).toContain(`cp target/spark-shuffle-agent-plugin-*[0-9].jar ${jar?.sources[0]}`);
    expect(jar?.sources).toEqual(['/src/spark-shuffle-agent-plugin.jar']);
    expect(jar?.dest).toBe(PLUGIN_JAR_IN_IMAGE);
    expect(dockerIncluded(IGNORE, 'spark-plugin/src/test'), 'test sources stay out of the context').toBe(false);
  });

  it('copies only files that exist and that .dockerignore lets into the build context', () => {
    const local = DOCKERFILE.stages.flatMap((_, i) => copies(i)).filter((c) => c.from === undefined);
    expect(local.length).toBeGreaterThan(0);
    for (const c of local) {
      for (const src of c.sources) {
        expect(existsSync(join(ROOT, src)), `${src} exists`).toBe(true);
        expect(dockerIncluded(IGNORE, src), `${src} is in the build context`).toBe(true);
      }
    }
    // Nothing heavy or secret leaks into the context.
    for (const p of ['node_modules', 'dist', '.git', 'test', 'var', 'daemonset/daemonset.yaml']) {
      expect(dockerIncluded(IGNORE, p), `${p} is ignored`).toBe(false);
    }
  });

  it('builds with `npm run build:agent` (tsc -p tsconfig.build.json, then the bundle; part of `npm run build`) the CLI that package.json names as bin', () => {
    expect(PKG.scripts['build:agent']).toBe('tsc -p tsconfig.build.json && node scripts/bundle-agent.mjs');
    expect(PKG.scripts.build).toContain('npm run build:agent');
    const build = 0;
    expect(inStage(build, 'RUN').map((r) => r.args)).toContain('npm run build:agent');
    const copied = copies(build).flatMap((c) => c.sources);
    for (const needed of ['package.json', 'package-lock.json', 'tsconfig.json', 'tsconfig.build.json', 'agent', 'scripts/bundle-agent.mjs']) expect(copied).toContain(needed);
    const tsconfig = JSON.parse(readFileSync(join(ROOT, 'tsconfig.json'), 'utf8')) as { compilerOptions: { outDir: string; rootDir: string } };
    // The bin is the bundle the script writes (its outfile), from agent/bin.cts, inside tsc's outDir
    // (the image copies that one directory).
    const bin = PKG.bin['shuffle-agent'] as string;
    const bundler = readFileSync(join(ROOT, 'scripts/bundle-agent.mjs'), 'utf8');
    expect(bundler).toContain(`outfile: '${bin}'`);
    expect(bundler).toContain("entryPoints: ['agent/bin.cts']");
    expect(existsSync(join(ROOT, 'agent/bin.cts'))).toBe(true);
    expect(bin.startsWith(`${tsconfig.compilerOptions.outDir}/`)).toBe(true);
    expect(copies(FINAL).some((c) => c.from === 'build' && c.sources.includes(`/src/${tsconfig.compilerOptions.outDir}`))).toBe(true);
  });

  it('puts in the image everything the published package holds (package.json "files")', () => {
    const dests = copies(FINAL).map((c) => c.dest.replace(/^\.\//, '').replace(/\/$/, ''));
    expect(PKG.files.length).toBeGreaterThan(0);
    for (const f of PKG.files) expect(dests, `${f} is copied into the runtime stage`).toContain(f);
  });

  it('gives the runtime production dependencies only', () => {
    const depsStage = DOCKERFILE.stages.findIndex((s) => s.name === 'deps');
    const ci = inStage(depsStage, 'RUN').map((r) => r.args).filter((a) => a.startsWith('npm ci'));
    expect(ci).toHaveLength(1);
    expect(ci[0]).toContain('--omit=dev');
    const modules = copies(FINAL).filter((c) => c.sources.some((s) => s.endsWith('node_modules')));
    expect(modules).toEqual([{ from: 'deps', sources: ['/app/node_modules'], dest: './node_modules' }]);
    expect(inStage(FINAL, 'RUN').some((r) => /\bnpm (ci|install)\b/.test(r.args))).toBe(false);
    // ESM: dist/*.js are modules only because package.json says so; version.ts reads it too.
    expect(PKG.type).toBe('module');
    expect(copies(FINAL).some((c) => c.from === undefined && c.sources.includes('package.json'))).toBe(true);
  });

  it('the agent imports at run time only what `npm ci --omit=dev` installs', () => {
    const packages = new Set<string>();
    const visit = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) visit(p);
        else if (e.name.endsWith('.ts')) {
          const text = readFileSync(p, 'utf8');
          // Type-only imports are erased by tsc; everything else is loaded at run time.
          for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)(\s+type)?\b[^;]*?\bfrom\s+['"]([^'"]+)['"]|\bimport\(['"]([^'"]+)['"]\)/g)) {
            const spec = (m[2] ?? m[3]) as string;
            if (m[1] !== undefined || spec.startsWith('.') || spec.startsWith('node:')) continue;
            packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : (spec.split('/')[0] as string));
          }
        }
      }
    };
    visit(join(ROOT, 'agent'));
    expect(packages.size).toBeGreaterThan(0);
    for (const p of packages) expect(Object.keys(PKG.dependencies), `${p} is a production dependency`).toContain(p);
  });

  it('runs the built CLI as the non-root uid the manifests use, with TMPDIR on the mounted /tmp', () => {
    const workdir = inStage(FINAL, 'WORKDIR').at(-1)?.args as string;
    const entry = JSON.parse(inStage(FINAL, 'ENTRYPOINT').at(-1)?.args as string) as string[];
    expect(entry[0]).toBe('node');
    expect(entry.at(-1)).toBe(posix.join(workdir, PKG.bin['shuffle-agent'] as string));
    expect(JSON.parse(inStage(FINAL, 'CMD').at(-1)?.args as string)).toEqual(['run']);

    const user = inStage(FINAL, 'USER').at(-1)?.args as string;
    const m = /^(\d+):(\d+)$/.exec(user);
    expect(m, 'numeric uid:gid, so runAsNonRoot can verify it').not.toBeNull();
    expect(Number(m?.[1])).toBeGreaterThan(0);
    const ds = parseAllDocuments(readFileSync(join(ROOT, 'daemonset/daemonset.yaml'), 'utf8'))[0]?.toJS() as IDaemonSet;
    const sc = ds.spec?.template.spec?.containers[0]?.securityContext;
    expect(sc?.runAsUser).toBe(Number(m?.[1]));
    expect(sc?.runAsGroup).toBe(Number(m?.[2]));

    expect(inStage(FINAL, 'ENV').map((e) => e.args).join(' ')).toMatch(/\bTMPDIR=\/tmp\b/);
    const exposed = inStage(FINAL, 'EXPOSE').flatMap((e) => e.args.split(' ').map(Number));
    for (const flag of [RUN_OPTIONS.httpListen, RUN_OPTIONS.grpcListen]) {
      expect(exposed, `--${flag.flag} default port`).toContain(flag.parse(flag.default).port);
    }
  });
});
