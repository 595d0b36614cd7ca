/**
 * Where `blockmgr-*` directories sit under a local root. The default (empty) layout is one
 * executor: `<root>/blockmgr-*`. DaemonSet mode uses `{appId}/{executorId}`:
 * `<root>/<appId>/<executorId>/blockmgr-*`, so one agent serves several apps and executors.
 * A segment with `*` matches names of that shape: Spark's standalone and local-cluster workers
 * put each executor's dirs at `<root>/spark-<uuid>/executor-<uuid>/blockmgr-*`
 * (layout `spark-*` then `executor-*`), with no app id in the path.
 */
import { isSafeAppId } from '../spark/fallback-key.js';

/** A Kubernetes namespace name (an RFC 1123 DNS label). */
export const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** Executor ids are pod names (DNS subdomains) or Spark's numeric ids; never `.` or `..`. */
export const EXECUTOR_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;

export type LayoutSegment =
  | { kind: 'appId' }
  | { kind: 'namespace' }
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
    if (part === '{namespace}') return { kind: 'namespace' };
    if (part.includes('{') || part.includes('}') || part === '..' || part === '.' || part === '') {
      throw new RangeError(`layout segment ${JSON.stringify(part)} must be {namespace}, {appId}, {executorId}, a plain directory name or a pattern with *`);
    }
    if (part.includes('*')) {
      const body = part.split('*').map((lit) => lit.replace(/[.+?^$()|[\]\\]/g, '\\$&')).join('[^/]*');
      return { kind: 'glob', value: part, pattern: new RegExp(`^${body}$`) };
    }
    return { kind: 'literal', value: part };
  });
  for (const kind of ['appId', 'executorId', 'namespace'] as const) {
    if (segments.filter((s) => s.kind === kind).length > 1) throw new RangeError(`layout ${JSON.stringify(template)} names {${kind}} twice`);
  }
  if (segments.some((s) => s.kind === 'namespace') && !segments.some((s) => s.kind === 'appId')) {
    throw new RangeError(`layout ${JSON.stringify(template)} names {namespace} without {appId}`);
  }
  return { template: trimmed, segments };
}

export interface LayoutMatch {
  /** The Kubernetes namespace of the executor's pod (DaemonSet mode): the tenant the app belongs to. */
  namespace?: string;
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
    } else if (seg.kind === 'namespace') {
      if (!NAMESPACE.test(part)) return undefined;
      match.namespace = part;
    } else {
      if (!EXECUTOR_ID.test(part)) return undefined;
      match.executorId = part;
    }
  }
  return match;
}
