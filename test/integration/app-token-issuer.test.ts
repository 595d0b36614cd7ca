/**
 * Token issuance by proof of directory, on real files (issue 17, items 2, 4 and 5): every segment
 * of the executor's directory is validated against its layout segment (no `..` through a glob
 * layout, a missing executor is a 400, not a 500); only the namespace owning an app id gets its
 * token; one peer's flood of requests gets 429 at its own limit and leaves other peers theirs.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppTokenIssuer, MAX_TOKEN_REQUESTS_PER_PEER, PROOF_FILE, type AppTokenIssuerOptions, type TokenRequest } from '../../agent/serve/app-token-proof.js';
import { appToken } from '../../agent/serve/auth.js';
import { parseLayout } from '../../agent/watch/layout.js';
import { tempDir } from '../kit/temp-dir.js';

const KEY = Buffer.from('k'.repeat(48));
const APP = 'spark-0a1b2c3d4e5f60718293a4b5c6d7e8f9';
const PROOF = 'p'.repeat(40);
const NOW = Date.UTC(2026, 11, 6, 5, 0, 0);
const TTL_MS = 12 * 3_600_000;
/** The token the issuer answers at NOW. */
const TOKEN = appToken(KEY, APP, (NOW + TTL_MS) / 1000);

describe('app-token issuance', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let root: string;
  let outside: string;

  beforeAll(async () => {
    dir = await tempDir('ssa-issuer-');
    root = join(dir.path, 'local');
    outside = join(dir.path, 'elsewhere');
    // A proof file the attacker managed to put somewhere the agent can read, outside any executor.
    await mkdir(outside, { recursive: true });
    await writeFile(join(outside, PROOF_FILE), PROOF);
    await mkdir(join(root, APP), { recursive: true });
    await mkdir(join(root, 'spark-w1', 'executor-1'), { recursive: true });
  });

  afterAll(async () => dir.cleanup());

  const request = (r: Partial<TokenRequest>): TokenRequest => ({ app: APP, namespace: null, executor: null, proof: PROOF, peer: '10.0.0.1', ...r });
  const issuer = (layout: string, owns: AppTokenIssuerOptions['owns'] = async () => true, defaultAppId = APP): AppTokenIssuer =>
    new AppTokenIssuer({ roots: [root], layout: parseLayout(layout), defaultAppId, key: () => KEY, owns, ttlMs: TTL_MS, now: () => NOW });

  it('glob layouts: every segment is checked, `..` never climbs out, a missing executor is a 400', async () => {
    const climb = join('..', '..', 'elsewhere');
    for (const layout of ['spark-*/executor-*', '{appId}/executor-*']) {
      const i = issuer(layout);
      const segments = layout === 'spark-*/executor-*' ? ['spark-w1/..', `../${climb}`, `spark-w1/${climb}`, '../../../../tmp/x', 'spark-w1/executor-1/../../..'] : [climb, '..', '../elsewhere', 'executor-1/../..'];
      for (const executor of segments) {
        const got = await i.issue(request({ executor }));
        expect(got, `${layout} executor=${executor}`).toMatchObject({ ok: false, status: 400 });
      }
      expect(await i.issue(request({})), `${layout} without executor`).toMatchObject({ ok: false, status: 400 });
      // A name that does not fit the glob.
      expect(await i.issue(request({ executor: layout.startsWith('spark') ? 'spark-w1/other-1' : 'other-1' }))).toMatchObject({ ok: false, status: 400 });
    }
    // The legitimate request of such a layout still works.
    await writeFile(join(root, 'spark-w1', 'executor-1', PROOF_FILE), PROOF);
    expect(await issuer('spark-*/executor-*').issue(request({ executor: 'spark-w1/executor-1' }))).toEqual({ ok: true, token: TOKEN, expiresAt: '2026-12-06T17:00:00.000Z' });
  });

  it('{namespace}: the namespace is validated, and only the owning namespace gets the token', async () => {
    const layout = '{namespace}/{appId}/{executorId}';
    for (const ns of ['team-a', 'team-b']) {
      await mkdir(join(root, ns, APP, `${ns}-exec`), { recursive: true });
      await writeFile(join(root, ns, APP, `${ns}-exec`, PROOF_FILE), PROOF);
    }
    const i = issuer(layout, async (_app, ns) => ns === 'team-a');
    expect(await i.issue(request({ namespace: 'team-a', executor: 'team-a-exec' }))).toEqual({ ok: true, token: TOKEN, expiresAt: '2026-12-06T17:00:00.000Z' });
    expect(await i.issue(request({ namespace: 'team-b', executor: 'team-b-exec' }))).toMatchObject({ ok: false, status: 403 });
    for (const namespace of [null, '..', 'Team-A', '../team-a', 'a/b']) {
      expect(await i.issue(request({ namespace, executor: 'team-a-exec' })), `namespace=${namespace}`).toMatchObject({ ok: false, status: 400 });
    }
    // The store cannot say who owns the app now: retry later, no token.
    const failing = issuer(layout, async () => Promise.reject(new Error('store down')));
    expect(await failing.issue(request({ namespace: 'team-a', executor: 'team-a-exec' }))).toMatchObject({ ok: false, status: 503 });
  });

  it("one peer's flood is limited per peer: another peer's requests all succeed meanwhile", async () => {
    const layout = '{namespace}/{appId}/{executorId}';
    const ATTACKER_APP = 'spark-ffffffffffffffffffffffffffffffff';
    await mkdir(join(root, 'team-b', ATTACKER_APP, 'b-exec'), { recursive: true });
    await writeFile(join(root, 'team-b', ATTACKER_APP, 'b-exec', PROOF_FILE), PROOF);
    // The attacker's own (valid) requests hang in the ownership check and hold their slots.
    let release: () => void = () => undefined;
    const held = new Promise<void>((r) => (release = r));
    const i = issuer(layout, async (app) => {
      if (app === ATTACKER_APP) await held;
      return true;
    });
    const flood = Array.from({ length: 200 }, () => i.issue(request({ app: ATTACKER_APP, namespace: 'team-b', executor: 'b-exec', peer: '10.0.0.66' })));
    const legit: Array<Awaited<ReturnType<AppTokenIssuer['issue']>>> = [];
    for (let n = 0; n < 20; n++) legit.push(await i.issue(request({ namespace: 'team-a', executor: 'team-a-exec', peer: '10.0.0.7' })));
    expect(legit.filter((r) => r.ok)).toHaveLength(20);
    release();
    const flooded = await Promise.all(flood);
    expect(flooded.filter((r) => r.ok)).toHaveLength(MAX_TOKEN_REQUESTS_PER_PEER);
    expect(flooded.filter((r) => !r.ok && r.status === 429)).toHaveLength(200 - MAX_TOKEN_REQUESTS_PER_PEER);
  });
});
