/**
 * Where `blockmgr-*` directories sit under a local root. The default (empty) layout is one
 * executor: `<root>/blockmgr-*`. DaemonSet mode uses `{appId}/{executorId}`:
 * `<root>/<appId>/<executorId>/blockmgr-*`, so one agent serves several apps and executors.
 * A segment with `*` matches names of that shape: Spark's standalone and local-cluster workers
 * put each executor's dirs at `<root>/spark-<uuid>/executor-<uuid>/blockmgr-*`
 * (layout `spark-*` then `executor-*`), with no app id in the path.
 */
import { isSafeAppId } from '../spark/fallback-key.js';

export type LayoutSegment =
  | { kind: 'appId' }
  | { kind: 'executorId' }
  | { kind: 'literal'; value: string }
  | { kind: 'glob'; value: string; pattern: RegExp };

export interface LocalDirsLayout {
  readonly template: string;
  readonly segments: readonly LayoutSegment[];
}

export function parseLayout(template: string): LocalDirsLayout {
  const trimmed = template.replace(/^\/+|\/+$/g, '');
  if (trimmed === '') return { template: '', segments: [] };
  const segments = trimmed.split('/').map((part): LayoutSegment => {
    if (part === '{appId}') return { kind: 'appId' };
    if (part === '{executorId}') return { kind: 'executorId' };
    if (part.includes('{') || part.includes('}') || part === '..' || part === '.' || part === '') {
      throw new RangeError(`layout segment ${JSON.stringify(part)} must be {appId}, {executorId}, a plain directory name or a pattern with *`);
    }
    if (part.includes('*')) {
      const body = part.split('*').map((lit) => lit.replace(/[.+?^$()|[\]\\]/g, '\\$&')).join('[^/]*');
      return { kind: 'glob', value: part, pattern: new RegExp(`^${body}$`) };
    }
    return { kind: 'literal', value: part };
  });
  if (segments.filter((s) => s.kind === 'appId').length > 1 || segments.filter((s) => s.kind === 'executorId').length > 1) {
    throw new RangeError(`layout ${JSON.stringify(template)} names {appId} or {executorId} twice`);
  }
  return { template: trimmed, segments };
}

export interface LayoutMatch {
  appId?: string;
  executorId?: string;
}

/** Match the layout directories of a path relative to a root; undefined when they do not fit. */
export function matchLayout(layout: LocalDirsLayout, parts: readonly string[]): LayoutMatch | undefined {
  const match: LayoutMatch = {};
  for (let i = 0; i < layout.segments.length; i++) {
    const seg = layout.segments[i] as LayoutSegment;
    const part = parts[i];
    if (part === undefined) return match;
    if (seg.kind === 'literal') {
      if (part !== seg.value) return undefined;
    } else if (seg.kind === 'glob') {
      if (!seg.pattern.test(part)) return undefined;
    } else if (seg.kind === 'appId') {
      if (!isSafeAppId(part)) return undefined;
      match.appId = part;
    } else {
      match.executorId = part;
    }
  }
  return match;
}
