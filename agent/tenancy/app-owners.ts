/**
 * Who owns an app id. Spark lets a user choose `spark.app.id`, so an app id alone names no tenant:
 * a pod of an app submitted with another app's id would otherwise share that app's directory name,
 * token and store prefix. The owner is the Kubernetes namespace of the executor pods (the
 * `{namespace}` segment of the local-dirs layout, which the kubelet fills in from the pod's own
 * `metadata.namespace`; or `--pod-namespace` for a sidecar). Two rules follow:
 *
 * - on one node, the first namespace that claims an app id keeps it for the agent's life: a second
 *   app with the same id in another namespace is refused (nothing of it stored, served or tokened);
 * - in the store, the first agent that writes for an app id leaves `<appId>/_owner` naming the
 *   namespace, created only if absent; any agent (any node) refuses to write or issue tokens for
 *   that app id on behalf of another namespace, so no agent ever overwrites another owner's copies.
 *
 * The marker is also what `shuffle-agent gc` takes as proof that the project wrote a prefix.
 */
import { text } from 'node:stream/consumers';
import { NotFoundError, type BlockStore } from '../store/block-store.js';

/** The marker object under each app prefix, beside the plugin's `_heartbeat`. */
export const OWNER_OBJECT = '_owner';
const WRITER = 'spark-shuffle-agent';

/** What the owner check needs of a store. */
export type OwnerStore = Pick<BlockStore, 'createIfAbsent' | 'read'>;

/** The marker's content: small JSON, one line. */
export function ownerMarker(namespace: string): Buffer {
  return Buffer.from(`${JSON.stringify({ writer: WRITER, version: 1, namespace })}\n`);
}

/** The namespace a marker names, or undefined when it is not a marker this project wrote. */
export function parseOwnerMarker(body: string): string | undefined {
  try {
    const o = JSON.parse(body) as { writer?: unknown; namespace?: unknown };
    return o.writer === WRITER && typeof o.namespace === 'string' ? o.namespace : undefined;
  } catch {
    return undefined;
  }
}

/** A refused claim: which app, which namespace asked, and why (for the log; never sent to a peer). */
export interface RefusedClaim {
  appId: string;
  namespace: string;
  reason: string;
}

export class AppOwners {
  /** appId -> the namespace that owns it on this node. */
  private readonly owners = new Map<string, string>();
  /** `<namespace>|<appId>` -> the store's answer, asked once (a failed request is asked again). */
  private readonly decisions = new Map<string, Promise<boolean>>();

  constructor(
    private readonly store: OwnerStore,
    private readonly onRefused: (refused: RefusedClaim) => void = () => undefined,
  ) {}

  /** The namespace owning `appId` on this node, if any claimed it. */
  ownerOf(appId: string): string | undefined {
    return this.owners.get(appId);
  }

  /**
   * The node-local half of `claim`, at once: true when `namespace` owns `appId` on this node
   * (claiming it if nobody did). Outputs are queued on it; the store is asked before their first
   * write (`claim`), and a namespace the store refuses loses its local claim.
   */
  claimOnNode(appId: string, namespace: string): boolean {
    const local = this.owners.get(appId);
    if (local === undefined) {
      this.owners.set(appId, namespace);
      return true;
    }
    if (local === namespace) return true;
    this.refuse(appId, namespace, 'another namespace runs an app of this id on this node');
    return false;
  }

  /**
   * True when `namespace` owns `appId` (claiming it if nobody did, here and in the store); false
   * when another namespace does. Rejects when the store cannot answer now (retry later).
   */
  async claim(appId: string, namespace: string): Promise<boolean> {
    const local = this.owners.get(appId);
    if (local !== undefined && local !== namespace) {
      this.refuse(appId, namespace, 'another namespace runs an app of this id on this node');
      return false;
    }
    const key = `${namespace}|${appId}`;
    let decision = this.decisions.get(key);
    if (decision === undefined) {
      decision = this.askStore(appId, namespace);
      this.decisions.set(key, decision);
      // A store that could not answer is asked again next time; a clear answer stands.
      decision.catch(() => this.decisions.delete(key));
    }
    const ok = await decision;
    if (!ok) return false;
    const now = this.owners.get(appId);
    if (now !== undefined && now !== namespace) {
      this.refuse(appId, namespace, 'another namespace runs an app of this id on this node');
      return false;
    }
    this.owners.set(appId, namespace);
    return true;
  }

  private async askStore(appId: string, namespace: string): Promise<boolean> {
    const key = `${appId}/${OWNER_OBJECT}`;
    // Created or not, the marker is read back: on a server without conditional writes a racing
    // creator may have written after us, and whoever the stored marker names owns the app id.
    await this.store.createIfAbsent(key, ownerMarker(namespace));
    let body: string;
    try {
      body = await text(await this.store.read(key));
    } catch (err) {
      // Created by a concurrent claimant whose write is not visible yet: ask again later.
      if (err instanceof NotFoundError) throw new Error(`${key} exists but cannot be read yet`, { cause: err });
      throw err;
    }
    const owner = parseOwnerMarker(body);
    if (owner === namespace) return true;
    // The node-local claim was premature: let the namespace the store names claim this node.
    if (this.owners.get(appId) === namespace) this.owners.delete(appId);
    this.refuse(appId, namespace, owner === undefined ? `${key} is not a marker this project wrote` : 'the store holds this app id for another namespace');
    return false;
  }

  private refuse(appId: string, namespace: string, reason: string): void {
    this.onRefused({ appId, namespace, reason });
  }
}
