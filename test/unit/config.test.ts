import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../agent/util/errors.js';
import { envName, markdownReference, parsers, printable, resolveOptions } from '../../agent/config/option-table.js';
import { RUN_OPTIONS } from '../../agent/config/run-options.js';
import { matchLayout, parseLayout } from '../../agent/watch/layout.js';

describe('run options', () => {
  it('has defaults for the embedded mode', () => {
    const { config } = resolveOptions(RUN_OPTIONS, [], {});
    expect(config.localDirs).toEqual(['./var/spark-local']);
    expect(config.store).toBe('file:./var/fallback');
    expect(config.httpListen).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(config.grpcListen).toEqual({ host: '127.0.0.1', port: 7337 });
    expect(config.appId).toBeUndefined();
  });

  it('takes flags over env over defaults', () => {
    const env = { SHUFFLE_AGENT_LOCAL_DIRS: '/a,/b', SHUFFLE_AGENT_LOG_LEVEL: 'debug' };
    const { config, sources } = resolveOptions(RUN_OPTIONS, ['--log-level=warn', '--app-id', 'app-7'], env);
    expect(config.localDirs).toEqual(['/a', '/b']);
    expect(config.logLevel).toBe('warn');
    expect(config.appId).toBe('app-7');
    expect(sources.localDirs).toBe('env');
    expect(sources.logLevel).toBe('flag');
  });

  it('names the flag or env var in errors', () => {
    const fail = (argv: string[], env: Record<string, string> = {}): ConfigError => {
      try {
        resolveOptions(RUN_OPTIONS, argv, env);
      } catch (err) {
        return err as ConfigError;
      }
      throw new Error('expected a ConfigError');
    };
    expect(fail(['--nope']).message).toMatch(/unknown flag --nope/);
    expect(fail(['--http-listen', 'localhost']).message).toMatch(/--http-listen: expected HOST:PORT/);
    expect(fail([], { SHUFFLE_AGENT_UPLOAD_CONCURRENCY: '0' }).message).toMatch(/SHUFFLE_AGENT_UPLOAD_CONCURRENCY: must be between 1/);
    expect(fail(['--app-id', '../x']).key).toBe('appId');
    expect(fail(['--store', 'ftp://x']).message).toMatch(/--store/);
    expect(fail(['--local-dirs-layout', '{app}']).message).toMatch(/layout segment/);
    expect(fail(['--app-id']).message).toMatch(/needs a value/);
    expect(fail(['--forget-gone-outputs-after', '0.5s']).message).toBe('--forget-gone-outputs-after: must be between 1s and 30d, got 0.5s');
    expect(fail(['--grpc-app-token-ttl', '31d']).message).toBe('--grpc-app-token-ttl: must be between 1m and 30d, got 31d');
    expect(resolveOptions(RUN_OPTIONS, ['--forget-gone-outputs-after', '90s'], {}).config.forgetGoneOutputsAfter).toBe(90_000);
    expect(resolveOptions(RUN_OPTIONS, [], {}).config.forgetGoneOutputsAfter).toBe(3_600_000);
  });

  it('tokenises like node:util.parseArgs: --flag=value, --bool and --bool=false, short aliases, -- ends the flags', () => {
    const specs = {
      output: { group: 'g', flag: 'output', short: 'o', doc: '', parse: parsers.string },
      drain: { group: 'g', flag: 'drain', default: 'true', boolean: true, doc: '', parse: parsers.bool },
      store: { group: 'g', flag: 'store', doc: '', parse: parsers.string },
    };
    const a = resolveOptions(specs, ['-o', 'out.bin', '--drain=false', '--store=s3://b/p', '--', '--not-a-flag'], {});
    expect(a.config).toEqual({ output: 'out.bin', drain: false, store: 's3://b/p' });
    expect(a.positional).toEqual(['--not-a-flag']);
    expect(resolveOptions(specs, ['--drain'], {}).config.drain).toBe(true);
    // A typo gets the nearest flag; a word far from every flag gets none.
    expect(() => resolveOptions(specs, ['--stor', 'x'], {})).toThrow('unknown flag --stor (did you mean --store?)');
    expect(() => resolveOptions(specs, ['--drian'], {})).toThrow('(did you mean --drain?)');
    expect(() => resolveOptions(specs, ['--completely-different'], {})).toThrow(/^unknown flag --completely-different$/);
    expect(() => resolveOptions(specs, ['-x'], {})).toThrow(/unknown flag -x/);
  });

  it('parses sizes, addresses and prints a reference', () => {
    expect(parsers.bytes('8MiB')).toBe(8 * 1024 * 1024);
    expect(parsers.bytes('64k')).toBe(65536);
    expect(parsers.duration('90')).toBe(90_000);
    expect(parsers.duration('30m')).toBe(1_800_000);
    expect(parsers.duration('1.5h')).toBe(5_400_000);
    expect(parsers.duration('7d')).toBe(7 * 86_400_000);
    expect(() => parsers.duration('1w')).toThrow(/duration such as/);
    expect(parsers.listen('[::1]:0')).toEqual({ host: '::1', port: 0 });
    expect(parsers.listen(':9000')).toEqual({ host: '0.0.0.0', port: 9000 });
    expect(envName('grpc-tls-cert')).toBe('SHUFFLE_AGENT_GRPC_TLS_CERT');
    const doc = markdownReference(RUN_OPTIONS);
    expect(doc).toContain('`--local-dirs`');
    expect(doc).toContain('`SHUFFLE_AGENT_STORE`');
    const shown = printable({ secret: { ...RUN_OPTIONS.appId, secret: true } }, { secret: 'x' });
    expect(shown.secret).toBe('***');
  });
});

describe('local dir layout', () => {
  it('matches app and executor segments', () => {
    const l = parseLayout('{appId}/{executorId}');
    expect(matchLayout(l, ['spark-abc', '3'])).toEqual({ appId: 'spark-abc', executorId: '3' });
    expect(matchLayout(l, ['..', '3'])).toBeUndefined();
    expect(parseLayout('').segments).toEqual([]);
    expect(matchLayout(parseLayout('apps/{appId}'), ['other', 'x'])).toBeUndefined();
    expect(() => parseLayout('{appId}/{appId}')).toThrow(/twice/);
  });

  it('matches standalone workers\' per-executor dirs with * patterns', () => {
    const l = parseLayout('spark-*/executor-*');
    expect(matchLayout(l, ['spark-8205e918-7378', 'executor-0548d5db'])).toEqual({});
    expect(matchLayout(l, ['spark-1', 'blockmgr-2'])).toBeUndefined();
    expect(matchLayout(l, ['sparkX', 'executor-1'])).toBeUndefined();
    // Regex characters in the literal part are literal.
    expect(matchLayout(parseLayout('a.b*'), ['a.bc'])).toEqual({});
    expect(matchLayout(parseLayout('a.b*'), ['axbc'])).toBeUndefined();
  });
});
