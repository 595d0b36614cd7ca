/**
 * The plugin's Spark internals stay in one file: SparkInternals.java is the only main class that
 * names Spark's map-status and map-output-tracker classes (private[spark], public in bytecode), so
 * a Spark line that changes them changes one file (the house style's "one small adapter").
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../kit/repo-root.js';

const MAIN = join(ROOT, 'spark-plugin', 'src', 'main', 'java');
const ADAPTER = 'SparkInternals.java';

/** Spark's driver-side internals the plugin reaches: imported or named fully qualified. */
const INTERNAL = /\borg\.apache\.spark\.(?:scheduler\.(?:MapStatus\$?|CompressedMapStatus|HighlyCompressedMapStatus)|MapOutputTracker(?:Master)?|ShuffleStatus)\b/g;

function javaFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.java'))
    .map((e) => join(e.parentPath, e.name));
}

/** Every internal class a Java source names, outside comments. */
function internalsNamed(source: string): string[] {
  const code = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  return [...new Set(code.match(INTERNAL) ?? [])];
}

describe('the plugin touches MapStatus and the tracker in SparkInternals only', () => {
  it('finds a named internal, and ignores one in a comment', () => {
    expect(internalsNamed('import org.apache.spark.scheduler.MapStatus;\nclass A {}')).toEqual(['org.apache.spark.scheduler.MapStatus']);
    expect(internalsNamed('x = org.apache.spark.MapOutputTrackerMaster.class;')).toEqual(['org.apache.spark.MapOutputTrackerMaster']);
    expect(internalsNamed('/** see {@code org.apache.spark.scheduler.MapStatus} */ class A {}')).toEqual([]);
    expect(internalsNamed('import org.apache.spark.scheduler.MapStatusFoo;')).toEqual([]);
  });

  it('no main class but SparkInternals names them', () => {
    const files = javaFiles(MAIN);
    expect(files.some((f) => f.endsWith(ADAPTER))).toBe(true);
    const offenders = files
      .filter((f) => !f.endsWith(`/${ADAPTER}`))
      .flatMap((f) => internalsNamed(readFileSync(f, 'utf8')).map((name) => `${f.slice(MAIN.length + 1)}: ${name}`));
    expect(offenders).toEqual([]);
    // The adapter itself still holds them (else this check would guard nothing).
    expect(internalsNamed(readFileSync(files.find((f) => f.endsWith(ADAPTER))!, 'utf8'))).toContain('org.apache.spark.scheduler.MapStatus');
  });
});
