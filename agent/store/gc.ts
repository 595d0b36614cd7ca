/**
 * `shuffle-agent gc --store URL --older-than DURATION [--dry-run]`: deletes the prefixes of apps
 * that are gone (a driver that crashed, an app stopped without Spark's fallback clean-up, late
 * writes after the driver's own clean-up), judged by the app's newest object. The plugin's driver
 * side rewrites `<appId>/_heartbeat` every `spark.shuffleAgent.heartbeat.interval` (at most
 * 10 min), so a running app's newest object is never older than that; `--older-than` must be at
 * least three times the longest interval, which also dwarfs clock skew between this host and the
 * store. An app without the plugin has no heartbeat and is judged by its newest copy alone.
 *
 * Only prefixes this project wrote are touched: an app id's shape is not enough (a bucket shared
 * with other data has `warehouse/`, `spark-events/`...), so a prefix must also hold a marker the
 * agent (`_owner`, written before its first copy) or the plugin (`_heartbeat`) leaves. A prefix
 * without one is reported as kept, whatever its age.
 *
 * Safe against a concurrent writer: right before deleting, the app's prefix is listed again and
 * left alone if anything changed since the scan; only the keys of that second listing are
 * deleted, so an object written after it survives (and is reported as left).
 */
import type { BlockStore, StoredObject } from './block-store.js';
import { isSafeAppId } from '../spark/fallback-key.js';
import { Limiter } from '../util/limiter.js';
import { describeError } from '../util/errors.js';
import { OWNER_OBJECT } from '../tenancy/app-owners.js';

/** The plugin's heartbeat object under each app prefix (AppHeartbeat.NAME in the plugin). */
export const HEARTBEAT_OBJECT = '_heartbeat';
/** The longest heartbeat interval the plugin accepts (AgentConf.MAX_HEARTBEAT_INTERVAL_MS). */
export const MAX_HEARTBEAT_INTERVAL_MS = 10 * 60_000;
/** The smallest `--older-than` gc accepts: three heartbeat intervals at their longest. */
export const MIN_OLDER_THAN_MS = 3 * MAX_HEARTBEAT_INTERVAL_MS;

/** What gc needs of a store; `deleteMany` (S3) deletes 1000 keys per request. */
export type GcStore = Pick<BlockStore, 'url' | 'list' | 'delete'> & { deleteMany?: (keys: readonly string[]) => Promise<number> };

export type GcAction = 'deleted' | 'would-delete' | 'kept' | 'failed';

/** One app prefix and what gc did with it; printed as one JSON line. */
export interface GcDecision {
  app: string;
  action: GcAction;
  reason: string;
  objects: number;
  bytes: number;
  /** The newest object's time (ISO 8601). */
  newest: string;
  /** The heartbeat's time, or null when the app has none (no plugin). */
  heartbeat: string | null;
  /** Objects deleted (`deleted`, `failed`). */
  deleted?: number;
  /** Objects written while gc deleted, left in place. */
  left?: number;
}

export interface GcOptions {
  olderThanMs: number;
  dryRun: boolean;
  /** Clock (ms since epoch); for tests. */
  now?: () => number;
  /** Deletes at once on a store without `deleteMany`. */
  concurrency?: number;
}

interface Summary {
  objects: number;
  bytes: number;
  newest: number;
  heartbeat: number | undefined;
  /** The prefix holds `_owner` or `_heartbeat`: the project wrote it. */
  marked: boolean;
}

/** Whether `key` is a marker this project leaves under an app prefix (`<app>/_owner`, `<app>/_heartbeat`). */
export function isProjectMarker(app: string, key: string): boolean {
  return key === `${app}/${OWNER_OBJECT}` || key === `${app}/${HEARTBEAT_OBJECT}`;
}

/** Decides and acts on every app prefix of the store, one decision per app as it is made. */
export async function* collectGarbage(store: GcStore, opts: GcOptions): AsyncGenerator<GcDecision> {
  if (opts.olderThanMs < MIN_OLDER_THAN_MS) throw new RangeError(`older-than must be at least ${MIN_OLDER_THAN_MS / 60_000} min`);
  const now = opts.now ?? Date.now;
  const cutoff = now() - opts.olderThanMs;
  const apps = new Map<string, Summary>();
  for await (const o of store.list('')) {
    const slash = o.key.indexOf('/');
    const app = o.key.slice(0, slash);
    // Objects at the root or under names no app id can have are not an app's: never touched.
    if (slash <= 0 || !isSafeAppId(app)) continue;
    const s = apps.get(app) ?? { objects: 0, bytes: 0, newest: 0, heartbeat: undefined, marked: false };
    add(s, o, app);
    apps.set(app, s);
  }
  for (const app of [...apps.keys()].sort()) {
    const s = apps.get(app) as Summary;
    const base = {
      app,
      objects: s.objects,
      bytes: s.bytes,
      newest: new Date(s.newest).toISOString(),
      heartbeat: s.heartbeat === undefined ? null : new Date(s.heartbeat).toISOString(),
    };
    if (!s.marked) {
      yield { ...base, action: 'kept', reason: `no ${OWNER_OBJECT} or ${HEARTBEAT_OBJECT} marker: not an app prefix this project wrote` };
      continue;
    }
    if (s.newest > cutoff) {
      const running = s.heartbeat !== undefined && s.heartbeat === s.newest;
      yield { ...base, action: 'kept', reason: `${running ? 'heartbeat' : 'newest object'} ${age(now() - s.newest)} old, younger than --older-than` };
      continue;
    }
    if (opts.dryRun) {
      yield { ...base, action: 'would-delete', reason: `newest object ${age(now() - s.newest)} old` };
      continue;
    }
    yield await deleteApp(store, app, s, base, opts.concurrency ?? 8);
  }
}

async function deleteApp(store: GcStore, app: string, scanned: Summary, base: Omit<GcDecision, 'action' | 'reason'>, concurrency: number): Promise<GcDecision> {
  let keys: string[] = [];
  try {
    const again: Summary = { objects: 0, bytes: 0, newest: 0, heartbeat: undefined, marked: false };
    for await (const o of store.list(`${app}/`)) {
      add(again, o, app);
      keys.push(o.key);
    }
    if (again.objects !== scanned.objects || again.newest !== scanned.newest) {
      return { ...base, action: 'kept', reason: `changed during the run (${again.objects} objects, newest ${new Date(again.newest).toISOString()})` };
    }
    // The markers go last: a prefix gc could not finish still shows when its app last ran, and
    // that the project wrote it (a later run may finish it).
    keys = [...keys.filter((k) => !isProjectMarker(app, k)), ...keys.filter((k) => isProjectMarker(app, k))];
    let deleted = 0;
    if (store.deleteMany) deleted = await store.deleteMany(keys);
    else {
      const limiter = new Limiter(concurrency);
      const deleteOne = async (k: string): Promise<void> => {
        await store.delete(k);
        deleted++;
      };
      await Promise.all(keys.map((k) => limiter.run(() => deleteOne(k))));
    }
    const leftKeys: string[] = [];
    for await (const o of store.list(`${app}/`)) leftKeys.push(o.key);
    const left = leftKeys.length;
    return { ...base, action: 'deleted', reason: left > 0 ? `${left} objects written while deleting were left` : 'orphaned', deleted, ...(left > 0 ? { left } : {}) };
  } catch (err) {
    return { ...base, action: 'failed', reason: describeError(err) };
  }
}

function add(s: Summary, o: StoredObject, app: string): void {
  if (!o.modified) throw new Error(`the store reports no modification time for ${o.key}`);
  const t = o.modified.getTime();
  s.objects++;
  s.bytes += o.size;
  s.newest = Math.max(s.newest, t);
  if (o.key === `${app}/${HEARTBEAT_OBJECT}`) s.heartbeat = t;
  if (isProjectMarker(app, o.key)) s.marked = true;
}

function age(ms: number): string {
  const min = Math.max(0, Math.round(ms / 60_000));
  return min < 120 ? `${min} min` : min < 48 * 60 ? `${Math.round(min / 60)} h` : `${Math.round(min / 1440)} d`;
}
