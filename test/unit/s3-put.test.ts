/**
 * S3Putter against a local HTTP server: what goes on the wire (path, query, signed headers,
 * Content-MD5, body) and how answers map to the errors S3Store classifies. Its signatures are
 * verified for real by Swift in the integration tests (s3-store, conformance, faults).
 */
import { createHash } from 'node:crypto';
import { Agent } from 'node:http';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Putter, S3ResponseError, type S3PutTarget } from '../../agent/store/s3/s3-put.js';
import { classify } from '../../agent/store/s3/s3-errors.js';
import { FakeHttpServer } from '../support/fake-http.js';

describe('S3Putter', () => {
  const server = new FakeHttpServer();
  const agent = new Agent({ keepAlive: true });
  const target = (over: Partial<S3PutTarget> = {}): S3PutTarget => ({
    // Path style: the bucket is the first path segment (what the SDK resolves for a custom endpoint).
    endpoint: async () => {
      const url = new URL(server.url);
      return { protocol: 'http:', hostname: url.hostname, port: url.port, basePath: '/bkt', signingRegion: 'eu-west-3' };
    },
    credentials: async () => ({ accessKeyId: 'AKID', secretAccessKey: 'secret', sessionToken: 'tok' }),
    agentFor: () => agent,
    connectTimeoutMs: 1000,
    socketTimeoutMs: 1000,
    ...over,
  });
  beforeAll(async () => {
    await server.start();
  });
  afterAll(async () => {
    agent.destroy();
    await server.close();
  });

  it('sends one signed PUT with Content-MD5, metadata and an unsigned payload, and returns the ETag', async () => {
    const body = Buffer.from('hello shuffle');
    const md5 = createHash('md5').update(body).digest();
    server.handler = (_req, res) => void res.writeHead(200, { etag: `"${md5.toString('hex')}"`, 'x-amz-server-side-encryption': 'AES256' }).end();
    const out = await new S3Putter(target()).put({
      key: 'pre fix/app-1/0/shuffle_0_1_0.data',
      query: { uploadId: 'a/b+c', partNumber: '3' },
      body,
      contentLength: body.length,
      contentMd5: md5.toString('base64'),
      headers: { 'content-type': 'application/octet-stream', 'x-amz-meta-md5': md5.toString('hex') },
    });
    expect(out).toEqual({ ETag: `"${md5.toString('hex')}"`, ServerSideEncryption: 'AES256' });
    const req = server.requests.at(-1)!;
    expect(req.method).toBe('PUT');
    // Path segments and query values RFC 3986-encoded, query sorted: what the signature covers.
    expect(req.url).toBe('/bkt/pre%20fix/app-1/0/shuffle_0_1_0.data?partNumber=3&uploadId=a%2Fb%2Bc');
    expect(req.body).toBe('hello shuffle');
    expect(req.headers).toMatchObject({
      'content-md5': md5.toString('base64'),
      'content-length': String(body.length),
      'x-amz-content-sha256': 'UNSIGNED-PAYLOAD',
      'x-amz-security-token': 'tok',
      'x-amz-meta-md5': md5.toString('hex'),
    });
    expect(req.headers.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKID\/\d{8}\/eu-west-3\/s3\/aws4_request, SignedHeaders=content-md5;content-type;host;x-amz-content-sha256;x-amz-date;x-amz-meta-md5;x-amz-security-token, Signature=[0-9a-f]{64}$/,
    );
  });

  it('streams a Readable body', async () => {
    server.handler = (_req, res) => void res.writeHead(200, { etag: '"x"' }).end();
    await new S3Putter(target()).put({ key: 'k', body: Readable.from([Buffer.from('ab'), Buffer.from('cd')]), contentLength: 4, contentMd5: 'bWQ1' });
    expect(server.requests.at(-1)!.body).toBe('abcd');
  });

  it('an S3 error answer rejects with its Code and status, as the SDK would, and classify reads them', async () => {
    server.handler = (_req, res) =>
      void res.writeHead(503, { 'content-type': 'application/xml' }).end('<?xml version="1.0"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>');
    const err = await new S3Putter(target()).put({ key: 'k', body: Buffer.from('x'), contentLength: 1, contentMd5: 'x' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(S3ResponseError);
    expect(err).toMatchObject({ name: 'SlowDown', Code: 'SlowDown', $metadata: { httpStatusCode: 503 }, message: 'Please reduce your request rate.' });
    expect(classify('PutObject', 'k', err)).toMatchObject({ kind: 'transient', code: 'SlowDown' });

    server.handler = (_req, res) => void res.writeHead(403).end('<Error><Code>AccessDenied</Code><Message>no</Message></Error>');
    const denied = await new S3Putter(target()).put({ key: 'k', body: Buffer.from('x'), contentLength: 1, contentMd5: 'x' }).catch((e: unknown) => e);
    expect(classify('PutObject', 'k', denied)).toMatchObject({ kind: 'permanent', code: 'AccessDenied' });

    server.handler = (_req, res) => void res.writeHead(500).end();
    const bare = await new S3Putter(target()).put({ key: 'k', body: Buffer.from('x'), contentLength: 1, contentMd5: 'x' }).catch((e: unknown) => e);
    expect(bare).toMatchObject({ Code: 'HTTP500', $metadata: { httpStatusCode: 500 } });
  });

  it('a server that goes silent fails the request with a TimeoutError; an abort with an AbortError', async () => {
    server.handler = () => undefined; // never answers
    const silent = await new S3Putter(target({ socketTimeoutMs: 150 })).put({ key: 'k', body: Buffer.from('x'), contentLength: 1, contentMd5: 'x' }).catch((e: unknown) => e);
    expect(silent).toMatchObject({ name: 'TimeoutError', code: 'ETIMEDOUT' });
    expect(classify('PutObject', 'k', silent).kind).toBe('transient');

    const ac = new AbortController();
    const put = new S3Putter(target()).put({ key: 'k', body: Buffer.from('x'), contentLength: 1, contentMd5: 'x', signal: ac.signal });
    setTimeout(() => ac.abort(new Error('closing')), 50);
    await expect(put).rejects.toMatchObject({ name: 'AbortError' });
  });
});
