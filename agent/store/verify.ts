/**
 * `shuffle-agent verify --store URL --app-id ID`: re-read what is stored for an application and
 * check every map output the way Spark's fallback reader depends on it: the index parses, the
 * data object's length equals the last offset, an index exists wherever data does, every object
 * sits under the key FallbackStorage computes, and the bytes match the digest recorded at upload
 * (S3 metadata `md5` or `sha256`; a store that keeps no digest is checked for structure only).
 */
import { createHash } from 'node:crypto';
import type { BlockStore } from './block-store.js';
import { fallbackKey, isSafeAppId, type FallbackLayout } from '../spark/fallback-key.js';
import { parseSparkFileName } from '../spark/file-names.js';
import { checkCommitted, InvalidIndexError, parseIndex } from '../spark/index-file.js';
import { Limiter } from '../util/limiter.js';
import { describeError } from '../util/errors.js';

export type VerifyProblemKind =
  | 'index-missing'
  | 'index-invalid'
  | 'data-missing'
  | 'data-length-mismatch'
  | 'digest-mismatch'
  | 'misplaced-key'
  | 'read-failed';

export interface VerifyProblem {
  /** `<shuffleId>/<mapId>`. */
  output: string;
  key: string;
  kind: VerifyProblemKind;
  detail: string;
}

export interface VerifyReport {
  store: string;
  appId: string;
  outputs: number;
  okOutputs: number;
  objects: number;
  bytes: number;
  /** Objects whose bytes were compared with a recorded digest. */
  digestsChecked: number;
  /** Objects the store keeps no digest for (checked for structure only). */
  withoutDigest: number;
  /** Objects under the app that are not shuffle data or index files (left alone). */
  otherObjects: number;
  problems: VerifyProblem[];
}

interface Entry {
  key: string;
  size: number;
}

/** Check every map output stored for `appId`. Never throws for a problem in the data; only for an unusable store. */
export async function verifyStore(store: BlockStore, appId: string, layout: FallbackLayout = 'spark-3.3', concurrency = 4): Promise<VerifyReport> {
  if (!isSafeAppId(appId)) throw new RangeError(`app id ${JSON.stringify(appId)} is not valid`);
  const report: VerifyReport = { store: store.url, appId, outputs: 0, okOutputs: 0, objects: 0, bytes: 0, digestsChecked: 0, withoutDigest: 0, otherObjects: 0, problems: [] };
  const outputs = new Map<string, { data?: Entry; index?: Entry }>();
  for await (const o of store.list(`${appId}/`)) {
    report.objects++;
    report.bytes += o.size;
    const name = o.key.slice(o.key.lastIndexOf('/') + 1);
    const parsed = parseSparkFileName(name);
    if (parsed.kind !== 'shuffle' || parsed.type === 'checksum') {
      report.otherObjects++;
      continue;
    }
    const id = `${parsed.shuffleId}/${parsed.mapId}`;
    if (o.key !== fallbackKey(appId, parsed.shuffleId, name, layout)) {
      report.problems.push({ output: id, key: o.key, kind: 'misplaced-key', detail: `expected at ${fallbackKey(appId, parsed.shuffleId, name, layout)} (${layout} layout)` });
      continue;
    }
    const entry = outputs.get(id) ?? {};
    entry[parsed.type] = { key: o.key, size: o.size };
    outputs.set(id, entry);
  }
  report.outputs = outputs.size;
  const limiter = new Limiter(concurrency);
  await Promise.all(
    [...outputs].map(([id, files]) =>
      limiter.run(async () => {
        const problems: VerifyProblem[] = [];
        await checkOutput(store, id, files, report, problems);
        if (problems.length === 0) report.okOutputs++;
        report.problems.push(...problems);
      }),
    ),
  );
  report.problems.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return report;
}

async function checkOutput(store: BlockStore, id: string, files: { data?: Entry; index?: Entry }, report: VerifyReport, problems: VerifyProblem[]): Promise<void> {
  const problem = (key: string, kind: VerifyProblemKind, detail: string): void => {
    problems.push({ output: id, key, kind, detail });
  };
  if (!files.index) {
    // Spark uploads (and we write) the index last: data without an index is not a readable output.
    problem(files.data?.key ?? id, 'index-missing', 'data object without an index object');
    if (files.data) await checkDigest(store, id, files.data, report, problems);
    return;
  }
  let indexBytes: Buffer;
  try {
    indexBytes = await readWhole(store, files.index.key);
  } catch (err) {
    problem(files.index.key, 'read-failed', describeError(err));
    return;
  }
  await checkDigest(store, id, files.index, report, problems, indexBytes);
  let offsets: number[];
  try {
    offsets = parseIndex(indexBytes);
  } catch (err) {
    problem(files.index.key, 'index-invalid', (err as Error).message);
    return;
  }
  try {
    checkCommitted(offsets, files.data?.size);
  } catch (err) {
    if (!(err instanceof InvalidIndexError)) throw err;
    problem(files.data?.key ?? files.index.key, err.problem === 'data-missing' ? 'data-missing' : 'data-length-mismatch', err.message);
  }
  if (files.data) await checkDigest(store, id, files.data, report, problems);
}

/** Compare an object's bytes with the digest recorded for it, when the store keeps one. */
async function checkDigest(store: BlockStore, id: string, entry: Entry, report: VerifyReport, problems: VerifyProblem[], bytes?: Buffer): Promise<void> {
  try {
    const stat = await store.stat(entry.key);
    if (!stat?.digest) {
      report.withoutDigest++;
      return;
    }
    const [algorithm, expected] = stat.digest.split(':') as [string, string];
    if (algorithm !== 'sha256' && algorithm !== 'md5') {
      report.withoutDigest++;
      return;
    }
    const hash = createHash(algorithm);
    let size = 0;
    if (bytes) {
      hash.update(bytes);
      size = bytes.length;
    } else {
      for await (const chunk of await store.read(entry.key)) {
        hash.update(chunk as Buffer);
        size += (chunk as Buffer).length;
      }
    }
    report.digestsChecked++;
    const actual = hash.digest('hex');
    if (actual !== expected) {
      problems.push({ output: id, key: entry.key, kind: 'digest-mismatch', detail: `${algorithm} of ${size} stored bytes is ${actual}, recorded ${expected}` });
    }
  } catch (err) {
    problems.push({ output: id, key: entry.key, kind: 'read-failed', detail: describeError(err) });
  }
}

async function readWhole(store: BlockStore, key: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await store.read(key)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A human summary of a report, one line per problem. */
export function formatVerifyReport(r: VerifyReport): string {
  const lines = [
    `verify ${r.store} app ${r.appId}: ${r.outputs} map outputs, ${r.okOutputs} ok, ${r.problems.length} problem(s)`,
    `  ${r.objects} objects, ${r.bytes} bytes; ${r.digestsChecked} digests checked, ${r.withoutDigest} objects without a digest, ${r.otherObjects} other objects ignored`,
  ];
  for (const p of r.problems) lines.push(`  ${p.kind.padEnd(20)} ${p.key}: ${p.detail}`);
  lines.push(r.problems.length === 0 ? 'OK' : 'FAILED');
  return lines.join('\n');
}
