/**
 * Who owns an app id (issue 17, item 2): the first namespace to claim it on a node, and the one the
 * store's `<appId>/_owner` marker names across nodes; a foreign or unreadable marker owns nothing
 * for us; a store that cannot answer is asked again.
 */
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { NotFoundError } from '../../agent/store/block-store.js';
import { AppOwners, ownerMarker, parseOwnerMarker, type OwnerStore, type RefusedClaim } from '../../agent/tenancy/app-owners.js';

/** A store of small objects in memory; `failNext` makes the next create fail like an unreachable store. */
class Markers implements OwnerStore {
  readonly objects = new Map<string, Buffer>();
  failNext = 0;
  creates = 0;
  async createIfAbsent(key: string, body: Buffer): Promise<boolean> {
    this.creates++;
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('store unreachable');
    }
    if (this.objects.has(key)) return false;
    this.objects.set(key, body);
    return true;
  }
  async read(key: string): Promise<Readable> {
    const o = this.objects.get(key);
    if (!o) throw new NotFoundError(key);
    return Readable.from([o]);
  }
}

describe('AppOwners', () => {
  it('the first namespace owns an app id on the node; another is refused, locally and through the store', async () => {
    const store = new Markers();
    const refused: RefusedClaim[] = [];
    const node1 = new AppOwners(store, (r) => refused.push(r));
    expect(await node1.claim('spark-1', 'team-a')).toBe(true);
    expect(await node1.claim('spark-1', 'team-a')).toBe(true);
    expect(await node1.claim('spark-1', 'team-b')).toBe(false);
    expect(node1.ownerOf('spark-1')).toBe('team-a');
    // Another node, where team-b runs first: the store's marker says team-a.
    const node2 = new AppOwners(store, (r) => refused.push(r));
    expect(await node2.claim('spark-1', 'team-b')).toBe(false);
    expect(await node2.claim('spark-1', 'team-a')).toBe(true);
    expect(refused.map((r) => r.namespace)).toEqual(['team-b', 'team-b']);
    expect(parseOwnerMarker(String(store.objects.get('spark-1/_owner')))).toBe('team-a');
    // The store was asked once per (namespace, app) and node.
    expect(store.creates).toBe(3);
  });

  it('a marker this project did not write owns nothing for anybody', async () => {
    const store = new Markers();
    store.objects.set('spark-2/_owner', Buffer.from('{"namespace":"team-a"}'));
    const owners = new AppOwners(store);
    expect(await owners.claim('spark-2', 'team-a')).toBe(false);
    expect(parseOwnerMarker(ownerMarker('team-a').toString())).toBe('team-a');
  });

  it('a store that cannot answer is asked again at the next claim', async () => {
    const store = new Markers();
    store.failNext = 1;
    const owners = new AppOwners(store);
    await expect(owners.claim('spark-3', 'team-a')).rejects.toThrow(/unreachable/);
    expect(await owners.claim('spark-3', 'team-a')).toBe(true);
  });
});
