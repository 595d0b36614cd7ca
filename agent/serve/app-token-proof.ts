/**
 * How an executor gets its app's gRPC token without anybody handing it out: it proves that it can
 * write inside that app's own executor directory, which only the app's pods can (the kubelet mounts
 * `<root>/<appId>/<podName>` into a pod by the pod's own `spark-app-selector` label; a tenant's
 * pods never see another app's directory).
 *
 *   1. the executor writes a random proof (32+ url-safe characters) to
 *      `<its local dir>/.shuffle-agent-proof`;
 *   2. it calls `POST /v1/app-token?namespace=<ns>&app=<appId>&executor=<podName>&proof=<proof>`
 *      on its node's agent;
 *   3. the agent reads `<root>/<ns>/<appId>/<podName>/.shuffle-agent-proof` (regular file, no
 *      symlink, small), compares it in constant time, checks that the namespace owns the app id
 *      (tenancy/app-owners: a user may set `spark.app.id` to another app's id), and answers the
 *      token `appToken(key, appId, expiresAt)` (valid for `--grpc-app-token-ttl`; the executor asks
 *      again before it expires);
 *   4. the executor deletes the file.
 *
 * The token is an HMAC under the cluster key, so it works with every node's agent, for that app
 * only. The agent never writes into an executor's directory (its mount stays read-only).
 */
import { constants } from 'node:fs';
import { lstat, open } from 'node:fs/promises';
import { join } from 'node:path';
import { timingSafeEqual } from 'node:crypto';
import { isSafeAppId } from '../spark/fallback-key.js';
import { EXECUTOR_ID, NAMESPACE, type LocalDirsLayout } from '../watch/layout.js';
import { appToken } from './auth.js';

/** The file an executor writes its proof to, at the top of its local dir (beside `blockmgr-*`, which the watcher alone looks at). */
export const PROOF_FILE = '.shuffle-agent-proof';
const PROOF = /^[A-Za-z0-9_-]{32,128}$/;
const MAX_PROOF_FILE = 256;
/** Requests in flight at once from one peer address, and from all peers: one tenant's flood
 * gets 429 at its own limit and leaves the others their share. */
export const MAX_TOKEN_REQUESTS_PER_PEER = 4;
export const MAX_TOKEN_REQUESTS = 64;

export interface AppTokenIssuerOptions {
  roots: readonly string[];
  layout: LocalDirsLayout;
  /** The app of outputs whose path names none (sidecar mode: the pod's own). */
  defaultAppId: string;
  /** The current signing key (the key file's first); undefined when per-app tokens are off. */
  key: () => Buffer | undefined;
  /** How long an issued token is valid (ms). */
  ttlMs: number;
  /** Clock (ms since the epoch); for tests. */
  now?: () => number;
  /** Whether the namespace (undefined when the layout names none) owns the app id: only its
   * pods get the app's token (tenancy/app-owners). Rejects when that cannot be decided now. */
  owns: (appId: string, namespace: string | undefined) => Promise<boolean>;
}

/** What a token request carries (query parameters) and where it came from. */
export interface TokenRequest {
  app: string | null;
  /** The pod's namespace: required when the layout has `{namespace}`. */
  namespace: string | null;
  /** The executor's directory below the app: the `{executorId}` segment (the pod name), or, for
   * layouts with `*` segments, those segments' names joined by `/`. */
  executor: string | null;
  proof: string | null;
  /** The peer's address: the unit of fairness. */
  peer: string;
}

export type IssueResult = { ok: true; token: string; expiresAt: string } | { ok: false; status: number; error: string };

const USAGE = 'needs app=<Spark app id>, executor=<the executor directory (pod name)>, namespace=<pod namespace> when the layout names one, and proof=<32-128 url-safe characters>';

export class AppTokenIssuer {
  private running = 0;
  private readonly perPeer = new Map<string, number>();

  constructor(private readonly options: AppTokenIssuerOptions) {}

  /** Check the proof an executor wrote and answer its app's token. Errors say nothing about what exists. */
  async issue(req: TokenRequest): Promise<IssueResult> {
    const key = this.options.key();
    if (!key) return { ok: false, status: 404, error: 'per-app tokens are not enabled on this agent (--grpc-app-key-file)' };
    const { app: appId, proof } = req;
    if (appId === null || !isSafeAppId(appId) || proof === null || !PROOF.test(proof)) return { ok: false, status: 400, error: USAGE };
    const relative = this.relativeDir(req, appId);
    if (relative === undefined) return { ok: false, status: 400, error: USAGE };
    const namesApp = this.options.layout.segments.some((s) => s.kind === 'appId');
    if (!namesApp && appId !== this.options.defaultAppId) return { ok: false, status: 403, error: 'proof not accepted' };
    // Each request costs a few file-system calls and maybe a store request: bound how many run
    // at once, per peer first, so one tenant's flood cannot starve the others.
    const mine = this.perPeer.get(req.peer) ?? 0;
    if (mine >= MAX_TOKEN_REQUESTS_PER_PEER || this.running >= MAX_TOKEN_REQUESTS) return { ok: false, status: 429, error: 'too many token requests at once; retry' };
    this.running++;
    this.perPeer.set(req.peer, mine + 1);
    try {
      let proven = false;
      for (const root of this.options.roots) {
        const content = await readProof(root, relative);
        if (content !== undefined && sameText(content, proof)) {
          proven = true;
          break;
        }
      }
      if (!proven) return { ok: false, status: 403, error: 'proof not accepted' };
      let owned: boolean;
      try {
        owned = await this.options.owns(appId, req.namespace ?? undefined);
      } catch {
        return { ok: false, status: 503, error: 'cannot check the app id now; retry' };
      }
      // Another namespace owns this app id (a user may set spark.app.id to anything): no token.
      if (!owned) return { ok: false, status: 403, error: 'proof not accepted' };
      const expiresAt = Math.floor(((this.options.now ?? Date.now)() + this.options.ttlMs) / 1000);
      return { ok: true, token: appToken(key, appId, expiresAt), expiresAt: new Date(expiresAt * 1000).toISOString() };
    } finally {
      this.running--;
      const left = (this.perPeer.get(req.peer) ?? 1) - 1;
      if (left === 0) this.perPeer.delete(req.peer);
      else this.perPeer.set(req.peer, left);
    }
  }

  /**
   * The directories from a root to the executor's local dir, each validated against its layout
   * segment; undefined when the request lacks one or one does not fit (never `..`, never a name
   * the watcher would not take for that segment).
   */
  private relativeDir(req: TokenRequest, appId: string): string[] | undefined {
    const segments = this.options.layout.segments;
    const executorSegments = segments.filter((s) => s.kind === 'executorId' || s.kind === 'glob');
    const executorParts = executorSegments.length === 0 ? [] : (req.executor ?? '').split('/');
    if (executorParts.length !== executorSegments.length) return undefined;
    const out: string[] = [];
    let e = 0;
    for (const s of segments) {
      if (s.kind === 'literal') out.push(s.value);
      else if (s.kind === 'appId') out.push(appId);
      else if (s.kind === 'namespace') {
        if (req.namespace === null || !NAMESPACE.test(req.namespace)) return undefined;
        out.push(req.namespace);
      } else {
        const part = executorParts[e++] as string;
        if (!EXECUTOR_ID.test(part) || part.includes('..')) return undefined;
        if (s.kind === 'glob' && !s.pattern.test(part)) return undefined;
        out.push(part);
      }
    }
    return out;
  }
}

/**
 * The proof file under `root/<relative...>`, or undefined. Every directory below the root must be
 * a real directory (no symlink), and the file a small regular file with one link, opened without
 * following a symlink and without blocking on a FIFO.
 */
async function readProof(root: string, relative: readonly string[]): Promise<string | undefined> {
  let dir = root;
  for (const part of relative) {
    dir = join(dir, part);
    const st = await lstat(dir).catch(() => undefined);
    if (!st?.isDirectory()) return undefined;
  }
  let handle;
  try {
    handle = await open(join(dir, PROOF_FILE), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const st = await handle.stat();
    if (!st.isFile() || st.nlink !== 1 || st.size > MAX_PROOF_FILE) return undefined;
    const buf = Buffer.alloc(MAX_PROOF_FILE + 1);
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    return buf.subarray(0, bytesRead).toString('utf8').trim();
  } catch {
    return undefined;
  } finally {
    await handle.close().catch(() => undefined);
  }
}

function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}
