/**
 * The CLI as an on-call engineer meets it, with the built executable: help on every subcommand,
 * a suggestion for a typo, and for each user error (unknown flag, missing key file, a store that
 * does not exist, wrong credentials) its documented exit code, a one-line message, and no stack
 * trace.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliProcess } from '../kit/cli-process.js';
import { createBucket, startS3rver, type S3Server } from '../kit/s3-servers.js';

const SUBCOMMANDS = ['run', 'wait-safe-exit', 'fetch', 'app-token', 'verify', 'gc'];

interface Result {
  code: number | null;
  out: string;
  err: string;
}

async function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Result> {
  const p = new CliProcess(args, { env });
  const exit = await p.exited;
  // The exit can come before the last lines of the pipes were read.
  await new Promise((r) => setImmediate(r));
  return { code: exit.code, out: p.lines.map((l) => (typeof l.msg === 'string' && Object.keys(l).length === 1 ? l.msg : JSON.stringify(l))).join('\n'), err: p.stderr.join('\n') };
}

/** A stack trace has lines like `    at main (file:///...)`. */
const STACK = /^\s+at .+[:(]/m;

describe('shuffle-agent CLI', () => {
  let dir: string;
  let s3: S3Server;
  let bucket: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cli-errors-'));
    s3 = await startS3rver();
    bucket = await createBucket(s3, 'cli');
  });
  afterAll(async () => {
    await s3.close();
    await rm(dir, { recursive: true, force: true });
  });

  it.each(SUBCOMMANDS.flatMap((c) => [[c, '--help'], [c, '-h']]))('%s %s prints plain-text help and exits 0', async (command, flag) => {
    const r = await cli([command, flag]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(new RegExp(`^Usage: shuffle-agent ${command}`));
    expect(r.out).toMatch(/^Flags:$/m);
    expect(r.out).toMatch(/^Exit codes:$/m);
    // Plain text, not the README's Markdown table.
    expect(r.out).not.toMatch(/^\|/m);
    expect(r.out).not.toContain('`');
    expect(r.err).toBe('');
  });

  it('--help and -h without a command list the commands and exit codes', async () => {
    for (const flag of ['--help', '-h']) {
      const r = await cli([flag]);
      expect(r.code).toBe(0);
      for (const c of SUBCOMMANDS) expect(r.out).toContain(`  ${c} `);
      expect(r.out).toMatch(/^ {2}4 {2}the store does not exist/m);
    }
  });

  it('an unknown flag exits 2 with the closest flag suggested', async () => {
    const r = await cli(['gc', '--stor', 'file:/tmp/x', '--older-than', '1h']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('shuffle-agent gc: unknown flag --stor (did you mean --store?)');
    expect(r.err).not.toMatch(STACK);
    const run = await cli(['run', '--loca-dirs', '/tmp']);
    expect(run.code).toBe(2);
    expect(run.err).toContain('did you mean --local-dirs?');
    const far = await cli(['verify', '--zzzzzzzzzz']);
    expect(far.code).toBe(2);
    expect(far.err).toContain('unknown flag --zzzzzzzzzz');
    expect(far.err).not.toContain('did you mean');
  });

  it('an unknown command exits 2 with a suggestion', async () => {
    const r = await cli(['verfy']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('unknown command "verfy" (did you mean verify?)');
  });

  it('a missing required flag exits 2 and names it', async () => {
    const r = await cli(['verify', '--store', `file://${dir}`]);
    expect(r.code).toBe(2);
    expect(r.err).toContain('--app-id is required');
    expect(r.err).toContain('usage: shuffle-agent verify');
  });

  it('app-token with a missing key file exits 2 naming the file, without a stack trace', async () => {
    const missing = join(dir, 'no-such-key');
    const r = await cli(['app-token', '--key-file', missing, '--app-id', 'app-1']);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`--key-file ${missing}`);
    expect(r.err).toContain('ENOENT');
    expect(r.err).not.toMatch(STACK);
    // And with a key that is there, the token.
    const key = join(dir, 'key');
    await writeFile(key, `${'k'.repeat(40)}\n`);
    const ok = await cli(['app-token', '--key-file', key, '--app-id', 'app-1']);
    expect(ok.code).toBe(0);
    expect(ok.out).toMatch(/^\S{20,}$/);
  });

  it('verify and gc on a file store that does not exist exit 4, never OK', async () => {
    const store = `file://${join(dir, 'nowhere')}`;
    const v = await cli(['verify', '--store', store, '--app-id', 'app-1']);
    expect(v.code).toBe(4);
    expect(v.err).toMatch(/store error: .*no such directory/);
    expect(v.out).not.toContain('OK');
    expect(v.err).not.toMatch(STACK);
    const g = await cli(['gc', '--store', store, '--older-than', '1h']);
    expect(g.code).toBe(4);
    expect(g.err).toMatch(/store error: .*no such directory/);
  });

  const s3Args = (b: string): string[] => ['--store', `s3://${b}/root`, '--s3-endpoint', s3.endpoint, '--s3-force-path-style', '--s3-checksums', 'when_required', '--s3-region', 'us-east-1'];
  const goodKeys = (): NodeJS.ProcessEnv => ({ AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey });

  it('verify and gc on a bucket that does not exist exit 4', async () => {
    const v = await cli(['verify', ...s3Args('no-such-bucket-here'), '--app-id', 'app-1'], goodKeys());
    expect(v.code).toBe(4);
    expect(v.err).toContain('no such bucket');
    expect(v.out).not.toContain('OK');
    const g = await cli(['gc', ...s3Args('no-such-bucket-here'), '--older-than', '1h'], goodKeys());
    expect(g.code).toBe(4);
    expect(g.err).toContain('no such bucket');
    expect(g.err).not.toMatch(STACK);
  });

  it('wrong credentials exit 4 (a store error), not 2 (bad usage)', async () => {
    const env = { AWS_ACCESS_KEY_ID: 'WRONG', AWS_SECRET_ACCESS_KEY: 'WRONG' };
    const v = await cli(['verify', ...s3Args(bucket), '--app-id', 'app-1'], env);
    expect(v.code).toBe(4);
    expect(v.err).toMatch(/store error: s3 HeadBucket .*(Forbidden|InvalidAccessKeyId|HTTP 403)/);
    expect(v.err).not.toMatch(STACK);
    const g = await cli(['gc', ...s3Args(bucket), '--older-than', '1h'], env);
    expect(g.code).toBe(4);
  });

  it('verify on an existing store without the app exits 5 and does not print OK', async () => {
    const v = await cli(['verify', ...s3Args(bucket), '--app-id', 'app-1'], goodKeys());
    expect(v.code).toBe(5);
    expect(v.err).toContain('no map outputs stored for app-1');
    expect(v.out).not.toMatch(/^OK$/m);
  });
});
