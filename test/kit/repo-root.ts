/** Where the kit finds the repository: it runs from source (vitest) and compiled (dist/test/kit). */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
  return dir;
}

/** The repository root (the directory of package.json). */
export const ROOT = repoRoot();

/** The built agent CLI as package.json's bin and the image run it: bundled into one file
 * (`npm run build:agent`, scripts/bundle-agent.mjs). */
export const AGENT_CLI = join(ROOT, 'dist', 'agent', 'shuffle-agent.cjs');

/** The same CLI as tsc writes it, one file per module (bench:startup compares the two). */
export const AGENT_MODULES_CLI = join(ROOT, 'dist', 'agent', 'bin.cjs');
