// Node module hooks that run the project's TypeScript in a child process without a build:
// `node --import ./test/support/ts-register.mjs child.ts`. Specifiers ending in `.js` that name a
// `.ts` file next to them (the NodeNext convention) resolve to that file, which is transpiled
// (types stripped, no type check) with the project's own TypeScript. Output is cached by content
// hash in the OS temp dir, so only the first child pays for loading the compiler.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import process from 'node:process';
import { fileURLToPath, URL } from 'node:url';

const cacheDir = join(tmpdir(), 'shuffle-agent-ts-cache');
let ts;

export async function resolve(specifier, context, next) {
  if (specifier.endsWith('.js') && /^(\.|\/|file:)/.test(specifier) && context.parentURL) {
    const url = new URL(specifier.replace(/\.js$/, '.ts'), context.parentURL);
    if (existsSync(fileURLToPath(url))) return { url: url.href, shortCircuit: true };
  }
  return next(specifier, context);
}

export async function load(url, context, next) {
  if (!url.endsWith('.ts')) return next(url, context);
  const path = fileURLToPath(url);
  const source = await readFile(path, 'utf8');
  const cached = join(cacheDir, `${createHash('sha256').update(path).update('\0').update(source).digest('hex')}.mjs`);
  const hit = await readFile(cached, 'utf8').catch(() => undefined);
  if (hit !== undefined) return { format: 'module', source: hit, shortCircuit: true };
  ts ??= (await import('typescript')).default;
  const out = ts.transpileModule(source, {
    fileName: path,
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, inlineSourceMap: true },
  });
  await mkdir(cacheDir, { recursive: true });
  const temp = `${cached}.${process.pid}`;
  await writeFile(temp, out.outputText);
  await rename(temp, cached);
  return { format: 'module', source: out.outputText, shortCircuit: true };
}
