/** The log format an on-call engineer reads: rate-limited repeats with a count, `err` as an object, where-from fields. */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { baseFields, createLogger, RepeatLimiter, serializeError } from '../../agent/observability/logger.js';
import { StoreError } from '../../agent/store/block-store.js';
import { classify } from '../../agent/store/s3/s3-errors.js';

function sink(): { stream: Writable; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { stream, lines };
}

describe('RepeatLimiter', () => {
  it('lets the first of a key through per window and counts the rest', () => {
    let t = 0;
    const r = new RepeatLimiter(60_000, () => t);
    expect(r.take('a')).toBe(true);
    expect(r.take('a')).toBe(false);
    expect(r.take('b')).toBe(true);
    t = 30_000;
    expect(r.take('a')).toBe(false);
    expect(r.expired()).toEqual([]);
    t = 60_000;
    expect(r.expired()).toEqual([{ key: 'a', suppressed: 2 }]);
    // 'b' had nothing held back: forgotten, not reported.
    expect(r.take('a')).toBe(true);
  });
});

describe('createLogger', () => {
  it('writes one line per kind of warning per window, keyed by message and error code', () => {
    const { stream, lines } = sink();
    const logger = createLogger('info', stream, { env: {} });
    for (let i = 0; i < 50; i++) logger.warn({ code: 'ECONNREFUSED', attempt: i }, 'write-back failed; will retry');
    for (let i = 0; i < 5; i++) logger.warn({ err: new StoreError('denied', 'permanent', 'AccessDenied') }, 'write-back failed; will retry');
    for (let i = 0; i < 3; i++) logger.info('info lines are never limited');
    const warns = lines.filter((l) => l.level === 'warn');
    expect(warns.map((l) => l.code ?? (l.err as { code: string }).code)).toEqual(['ECONNREFUSED', 'AccessDenied']);
    expect(lines.filter((l) => l.msg === 'info lines are never limited')).toHaveLength(3);
  });

  it('carries pod, namespace, node and executor from the environment', () => {
    const { stream, lines } = sink();
    createLogger('info', stream, { env: { POD_NAME: 'exec-1', POD_NAMESPACE: 'team-a', NODE_NAME: 'node-7', SPARK_EXECUTOR_ID: '3' } }).info('hello');
    expect(lines[0]).toMatchObject({ pod: 'exec-1', namespace: 'team-a', node: 'node-7', executor: '3', msg: 'hello' });
    expect(baseFields({ POD_NAME: '' })).not.toHaveProperty('pod');
  });

  it('logs err as an object, without repeating an S3 message its cause already says', () => {
    const sdkError = Object.assign(new Error('Access Denied'), { name: 'AccessDenied', $metadata: { httpStatusCode: 403 } });
    const e = serializeError(classify('PutObject', 'app/0/shuffle_0_1_0.data', sdkError));
    expect(e).toMatchObject({ type: 'StoreError', code: 'AccessDenied', kind: 'permanent' });
    expect(e).not.toHaveProperty('cause');
    expect(e).not.toHaveProperty('stack');
    expect(String(e.message).match(/Access Denied/g)).toHaveLength(1);
    // An unexpected error keeps its stack, and a cause that adds something.
    const bug = serializeError(new TypeError('x is undefined', { cause: new Error('while reading the index') }));
    expect(bug.stack).toMatch(/TypeError: x is undefined/);
    expect(bug.cause).toMatchObject({ message: 'while reading the index' });
  });
});
