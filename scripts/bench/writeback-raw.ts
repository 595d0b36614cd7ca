/**
 * The store's ceiling for bench:writeback: the least a client can do per object — read the file
 * into memory, sign the request header (SigV4, UNSIGNED-PAYLOAD), send one PUT with no digest,
 * many at once on keep-alive sockets — so that what remains is the server's own cost. Not a
 * safe uploader (no Content-MD5, no retries, no multipart); only a yardstick. Settings come from
 * the BENCH_RAW env var (JSON); prints one JSON line.
 */
import { createHash, createHmac } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { join, relative } from 'node:path';

interface RawSpec {
  dir: string;
  endpoint: string;
  bucket: string;
  prefix: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  concurrency: number;
}

const spec = JSON.parse(process.env.BENCH_RAW ?? '') as RawSpec;
const endpoint = new URL(spec.endpoint);
const agent = new Agent({ keepAlive: true, maxSockets: spec.concurrency });

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p)));
    else if (!e.name.startsWith('.')) out.push(p);
  }
  return out;
}

const hmac = (key: Buffer | string, data: string): Buffer => createHmac('sha256', key).update(data).digest();

function put(key: string, body: Buffer): Promise<void> {
  const path = `/${spec.bucket}/${key}`;
  const amzDate = new Date().toISOString().replace(/[-:]|\.\d{3}/g, '');
  const day = amzDate.slice(0, 8);
  const scope = `${day}/us-east-1/s3/aws4_request`;
  const headers: Record<string, string> = { host: endpoint.host, 'x-amz-content-sha256': 'UNSIGNED-PAYLOAD', 'x-amz-date': amzDate };
  const signed = Object.keys(headers).sort();
  const canonical = ['PUT', path, '', ...signed.map((h) => `${h}:${headers[h]}`), '', signed.join(';'), 'UNSIGNED-PAYLOAD'].join('\n');
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, createHash('sha256').update(canonical).digest('hex')].join('\n');
  const k = hmac(hmac(hmac(hmac(`AWS4${spec.credentials.secretAccessKey}`, day), 'us-east-1'), 's3'), 'aws4_request');
  const auth = `AWS4-HMAC-SHA256 Credential=${spec.credentials.accessKeyId}/${scope}, SignedHeaders=${signed.join(';')}, Signature=${hmac(k, toSign).toString('hex')}`;
  return new Promise((resolve, reject) => {
    const req = request({ host: endpoint.hostname, port: endpoint.port, path, method: 'PUT', agent, headers: { ...headers, authorization: auth, 'content-length': String(body.length) } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve() : reject(new Error(`PUT ${key}: HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const files = await walk(spec.dir);
const started = performance.now();
let next = 0;
let bytes = 0;
await Promise.all(
  Array.from({ length: spec.concurrency }, async () => {
    while (next < files.length) {
      const f = files[next++] as string;
      const body = (await stat(f)).size > 0 ? await readFile(f) : Buffer.alloc(0);
      await put(`${spec.prefix}/${relative(spec.dir, f)}`, body);
      bytes += body.length;
    }
  }),
);
agent.destroy();
process.stdout.write(`${JSON.stringify({ files: files.length, bytes, seconds: (performance.now() - started) / 1000 })}\n`);
