/**
 * End-to-end tests run the BUILT CLI (`dist/agent/shuffle-agent.cjs`, bundled from the sources; other tests import
 * `dist/` modules). Build once per test run when the build is missing or older than a source file, so that `vitest run`
 * alone is enough: what `npm run build:agent` does, tsc then the bundle.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

export default function setup(): void {
  let built = 0;
  try {
    built = Math.min(statSync('dist/agent/bin.cjs').mtimeMs, statSync('dist/agent/shuffle-agent.cjs').mtimeMs);
  } catch {
    // not built yet
  }
  if (built < Math.max(newest('agent'), newest('scripts'))) {
    execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
    execFileSync(process.execPath, ['scripts/bundle-agent.mjs'], { stdio: 'inherit' });
  }
}
