/**
 * How an executor gets its app's gRPC token without anybody handing it out: it proves that it can
 * write inside that app's own executor directory, which only the app's pods can (the kubelet mounts
 * `<root>/<appId>/<podName>` into a pod by the pod's own `spark-app-selector` label; a tenant's
 * pods never see another app's directory).
 *
 *   1. the executor writes a random proof (32+ url-safe characters) to
 *      `<its local dir>/.shuffle-agent-proof`;
 *   2. it calls `POST /v1/app-token?app=<appId>&executor=<podName>&proof=<proof>` on its node's agent;
 *   3. the agent reads `<root>/<appId>/<podName>/.shuffle-agent-proof` (regular file, no symlink,
 *      small), compares it in constant time, and answers the token `appToken(key, appId)`;
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
import type { LocalDirsLayout } from '../watch/layout.js';
import { appToken } from './auth.js';

/** The file an executor writes its proof to, at the top of its local dir (beside `blockmgr-*`, which the watcher alone looks at). */
export const PROOF_FILE = '.shuffle-agent-proof';
const PROOF = /^[A-Za-z0-9_-]{32,128}$/;
/** Executor ids are pod names (DNS labels) or Spark's numeric ids. */
const EXECUTOR_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$/;
const MAX_PROOF_FILE = 256;

export interface AppTokenIssuerOptions {
  roots: readonly string[];
  layout: LocalDirsLayout;
  /** The app of outputs whose path names none (sidecar mode: the pod's own). */
  defaultAppId: string;
  /** The current cluster key; undefined when per-app tokens are off. */
  key: () => Buffer | undefined;
}

export type IssueResult = { ok: true; token: string } | { ok: false; status: number; error: string };

export class AppTokenIssuer {
  private running = 0;

  constructor(private readonly options: AppTokenIssuerOptions) {}

  /** Check the proof an executor wrote and answer its app's token. Errors say nothing about what exists. */
  async issue(appId: string | null, executorId: string | null, proof: string | null): Promise<IssueResult> {
    const key = this.options.key();
    if (!key) return { ok: false, status: 404, error: 'per-app tokens are not enabled on this agent (--grpc-app-key-file)' };
    if (appId === null || !isSafeAppId(appId) || proof === null || !PROOF.test(proof)) return { ok: false, status: 400, error: 'needs app=<Spark app id>, executor=<executor id> and proof=<32-128 url-safe characters>' };
    const needsExecutor = this.options.layout.segments.some((s) => s.kind === 'executorId');
    if (needsExecutor && (executorId === null || !EXECUTOR_ID.test(executorId))) return { ok: false, status: 400, error: 'needs executor=<executor id (the pod name)>' };
    const namesApp = this.options.layout.segments.some((s) => s.kind === 'appId');
    if (!namesApp && appId !== this.options.defaultAppId) return { ok: false, status: 403, error: 'proof not accepted' };
    // Each request costs a few file-system calls: bound how many run at once.
    if (this.running >= 16) return { ok: false, status: 429, error: 'too many token requests at once' };
    this.running++;
    try {
      for (const root of this.options.roots) {
        const relative = this.options.layout.segments.map((s) => (s.kind === 'literal' ? s.value : s.kind === 'appId' ? appId : (executorId as string)));
        const content = await readProof(root, relative);
        if (content !== undefined && sameText(content, proof)) return { ok: true, token: appToken(key, appId) };
      }
      return { ok: false, status: 403, error: 'proof not accepted' };
    } finally {
      this.running--;
    }
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
