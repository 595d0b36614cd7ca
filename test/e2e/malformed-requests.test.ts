/**
 * Issue 17, item 1: no request stops the node's agent. The built CLI as a child process gets a few
 * thousand malformed requests over loopback (bounded: a fixed count, a fixed number in flight,
 * each connection cut after a short bound): raw HTTP/1.x to the control plane and the app-token
 * endpoint (bad targets such as `//[`, absolute-form targets, HTTP/1.0 without Host, bad headers,
 * a bad request pipelined after a good one, random bytes), and HTTP/2 to the gRPC port (bad paths,
 * content types, deadlines, credentials, frames and bodies, garbage after the preface). Afterwards
 * the process still runs, answers every well-formed request (probes, status, a token against a
 * proof, a fetch with that token, byte for byte), and counted no unhandled rejection.
 */
import http2 from 'node:http2';
import { connect, type Socket } from 'node:net';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cliScope } from '../support/cli-scope.js';
import { mulberry32 } from '../kit/prng.js';
import { tempDir } from '../kit/temp-dir.js';
import { SparkLikeExecutor } from '../kit/spark-writer.js';
import { ShuffleAgentClient } from '../../agent/serve/client.js';
import { frameMessage } from '../../agent/serve/grpc-wire.js';

const APP = 'spark-0a1b2c3d4e5f60718293a4b5c6d7e8f9';
const NAMESPACE = 'team-a';
const EXECUTOR = 'app-a-exec-1';
const HTTP_REQUESTS = 2_400;
const GRPC_REQUESTS = 1_200;
const IN_FLIGHT = 24;

/** Runs `count` tasks, at most `limit` at once. */
async function bounded(count: number, limit: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: limit }, worker));
}

/** Writes `bytes` to a fresh connection and waits for the peer to close it, or 1.5 s, then cuts it. */
function rawExchange(port: number, bytes: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const socket: Socket = connect(port, '127.0.0.1');
    const done = (): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve();
    };
    const timer = setTimeout(done, 1_500);
    socket.on('error', done);
    socket.on('close', done);
    socket.on('data', () => undefined);
    socket.on('connect', () => {
      socket.write(bytes);
      socket.end();
    });
  });
}

/** One malformed (or hostile) HTTP/1.x request, chosen by `rnd`. */
function malformedHttp(rnd: () => number, port: number): Buffer {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  const token = `/v1/app-token?namespace=${NAMESPACE}&app=${APP}&executor=${EXECUTOR}&proof=${'p'.repeat(40)}`;
  const targets = [
    '//[', '//[::1', '//a:b@[', '//%', '//host:99999/x', '//', '///healthz', 'http://x/healthz', 'http://[/', 'https://agent/v1/status',
    '*', '', ' ', '/v1/status?wait=\u00ff&timeout=-1', '/v1/status?wait=serving&timeout=abc', '/%ff%fe', '/\u0000', '/healthz#frag',
    '/v1/app-token', '/v1/app-token?app=', '/v1/app-token?app=../../etc&executor=../../../../tmp&proof=' + 'a'.repeat(40),
    '/v1/app-token?app=%zz&executor=%00&proof=%', `/v1/app-token?app=${APP}&executor=../elsewhere&proof=${'a'.repeat(40)}`,
    `/v1/app-token?app=${APP}&proof=${'a'.repeat(40)}`, `${token}&app=${APP}`, '/metrics?x=' + 'y'.repeat(9000),
  ];
  const methods = ['GET', 'POST', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'CONNECT', 'TRACE', 'G ET', 'get', '', 'X'.repeat(300)];
  const versions = ['HTTP/1.1', 'HTTP/1.0', 'HTTP/2.0', 'HTTP/9.9', 'HTTP/1.1 x', 'http/1.1', ''];
  const headerSets = [
    `Host: 127.0.0.1:${port}\r\n`,
    '',
    'Host: [\r\n',
    'Host: a\r\nHost: b\r\n',
    `Host: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n`,
    'Host: x\r\nContent-Length: -1\r\n',
    'Host: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nnot a chunk\r\n',
    'Host: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n',
    'Host x\r\n',
    `Host: x\r\nX-Long: ${'h'.repeat(20_000)}\r\n`,
    'Host: x\r\n\u0000: y\r\n',
    'Host: x\r\nExpect: 100-continue\r\nContent-Length: 10\r\n',
  ];
  // (A well-formed POST /v1/drain from loopback is the agent's own pod asking for a drain, which
  // it may: the targets above are all malformed or harmless.)
  const kind = rnd();
  if (kind < 0.1) {
    // Random bytes, sometimes after a plausible start.
    const junk = Buffer.alloc(1 + Math.floor(rnd() * 600));
    for (let i = 0; i < junk.length; i++) junk[i] = Math.floor(rnd() * 256);
    return rnd() < 0.5 ? junk : Buffer.concat([Buffer.from('GET /'), junk]);
  }
  const line = `${pick(methods)} ${pick(targets)} ${pick(versions)}\r\n${pick(headerSets)}\r\n`;
  if (kind < 0.3) {
    // A bad request right after a good one on the same connection.
    return Buffer.from(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n${line}`);
  }
  if (kind < 0.4) {
    // A byte flipped somewhere in an otherwise plausible request.
    const b = Buffer.from(line, 'latin1');
    b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
    return b;
  }
  return Buffer.from(line, 'latin1');
}

const SERVICE = '/spark.shuffleagent.v1.ShuffleAgent';

/** One malformed gRPC call (or raw garbage on the gRPC port), chosen by `rnd`. */
async function malformedGrpc(rnd: () => number, port: number): Promise<void> {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)] as T;
  if (rnd() < 0.15) {
    const junk = Buffer.alloc(1 + Math.floor(rnd() * 400));
    for (let i = 0; i < junk.length; i++) junk[i] = Math.floor(rnd() * 256);
    const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
    return rawExchange(port, rnd() < 0.5 ? junk : Buffer.concat([preface, junk]));
  }
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => undefined);
  try {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 1_500);
      const finish = (): void => {
        clearTimeout(timer);
        resolve();
      };
      const headers: http2.OutgoingHttpHeaders = {
        ':method': pick(['POST', 'POST', 'GET', 'PUT']),
        ':path': pick([`${SERVICE}/FetchShuffleBlock`, `${SERVICE}/ListMapOutputs`, `${SERVICE}/GetStatus`, `${SERVICE}/Drain`, `${SERVICE}/Nope`, '/', '//[', `${SERVICE}/FetchShuffleBlock?x=%zz`]),
        'content-type': pick(['application/grpc', 'application/grpc+proto', 'text/plain', 'application/grpc;x', '']),
      };
      // Node's client refuses any other TE value; leaving it out is the malformed case.
      if (rnd() < 0.7) headers.te = 'trailers';
      if (rnd() < 0.5) headers['grpc-timeout'] = pick(['1S', '0n', '99999999999H', 'abc', '-1m', '10m']);
      if (rnd() < 0.5) headers.authorization = pick(['Bearer ', 'Bearer sat1:', `Bearer sat2:${APP}:xx`, `Bearer sat2:${APP}:99999999999:abc`, 'Bearer sat2::', 'Basic Zm9vOmJhcg==', `Bearer ${'x'.repeat(5000)}`, 'Bearer sat2:a:b:c']);
      if (rnd() < 0.2) headers['grpc-encoding'] = pick(['gzip', 'identity', 'x']);
      const stream = session.request(headers, { endStream: false });
      stream.on('error', finish);
      stream.on('close', finish);
      stream.on('data', () => undefined);
      const body = rnd();
      if (body < 0.25) {
        // A frame that declares more than it sends, or a huge length.
        const b = Buffer.alloc(5 + Math.floor(rnd() * 40));
        b[0] = Math.floor(rnd() * 3);
        b.writeUInt32BE(Math.floor(rnd() * 0xffffffff), 1);
        stream.end(b);
      } else if (body < 0.5) {
        const junk = Buffer.alloc(Math.floor(rnd() * 200));
        for (let i = 0; i < junk.length; i++) junk[i] = Math.floor(rnd() * 256);
        stream.end(frameMessage(junk));
      } else if (body < 0.65) {
        stream.close(http2.constants.NGHTTP2_CANCEL);
      } else if (body < 0.8) {
        stream.end(Buffer.concat([frameMessage(Buffer.from([0x0a, 0x05])), frameMessage(Buffer.alloc(3))]));
      } else {
        stream.end();
      }
    });
  } finally {
    session.destroy();
  }
}

describe('malformed requests never stop the agent (issue 17, item 1)', () => {
  const { cleanups, start } = cliScope();

  it(`survives ${HTTP_REQUESTS} malformed HTTP and ${GRPC_REQUESTS} malformed gRPC requests and answers every well-formed one after`, async () => {
    const t = await tempDir('ssa-fuzz-');
    cleanups.push(t.cleanup);
    const localRoot = join(t.path, 'local');
    const keyFile = join(t.path, 'app-key');
    await writeFile(keyFile, 'k'.repeat(48));
    const executorDir = join(localRoot, NAMESPACE, APP, EXECUTOR);
    await mkdir(executorDir, { recursive: true });
    const exec = new SparkLikeExecutor([executorDir]);
    const files = await exec.commit({ shuffleId: 0, mapId: 0, partitions: [100, 0, 3_000] });
    const agent = await start([
      '--local-dirs', localRoot,
      '--local-dirs-layout', '{namespace}/{appId}/{executorId}',
      '--store', `file:${join(t.path, 'store')}`,
      '--grpc-app-key-file', keyFile,
      '--rescan-interval', '0',
    ]);
    const running = agent;
    await running.waitForStatus((s) => s.persistedOutputs === 1);

    // A seeded PRNG: the same run of requests every time.
    const rnd = mulberry32(17);
    await bounded(HTTP_REQUESTS, IN_FLIGHT, async () => rawExchange(running.httpPort, malformedHttp(rnd, running.httpPort)));
    await bounded(GRPC_REQUESTS, IN_FLIGHT, async () => malformedGrpc(rnd, running.grpcPort));

    // Still the same process, and every well-formed request answered.
    expect(running.alive, `exited; stderr: ${running.stderr.slice(-5).join('\n')}`).toBe(true);
    expect((await fetch(`${running.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${running.url}/readyz`)).status).toBe(200);
    const status = await running.status();
    expect(status.state).toBe('serving');
    const metrics = await (await fetch(`${running.url}/metrics`)).text();
    expect(metrics).toMatch(/^shuffle_agent_unhandled_rejections_total 0$/m);

    const proof = 'q'.repeat(48);
    await writeFile(join(executorDir, '.shuffle-agent-proof'), proof);
    const res = await fetch(`${running.url}/v1/app-token?namespace=${NAMESPACE}&app=${APP}&executor=${EXECUTOR}&proof=${proof}`, { method: 'POST' });
    expect(res.status).toBe(200);
    const { token } = (await res.json()) as { token: string };
    const client = new ShuffleAgentClient({ target: `127.0.0.1:${running.grpcPort}`, token });
    cleanups.push(async () => client.close());
    const got = await client.fetchBlock({ app_id: APP, shuffle_id: 0, map_id: '0', start_reduce_id: 0, end_reduce_id: 3 });
    expect(got.equals(files.data)).toBe(true);
    expect((await running.stop('SIGTERM')).code).toBe(0);
  }, 240_000);
});
