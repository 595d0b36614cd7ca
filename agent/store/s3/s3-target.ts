/**
 * Where and how the agent's S3 requests go, resolved once for both of its clients: the SDK's
 * `S3Client` (every operation but uploads) and `S3Putter` (PutObject and UploadPart).
 *
 * The putter does not build URLs from the region itself: it asks the SDK where a PutObject of the
 * bucket would go (its endpoint rules: `--s3-endpoint`, `AWS_ENDPOINT_URL_S3`/`AWS_ENDPOINT_URL`
 * and the config file's `endpoint_url`, FIPS and dual-stack settings, path or virtual-hosted
 * style, a dotted bucket name) and with which signing region, so that every request of the agent
 * goes where the SDK's would. Before this, an unset `--s3-endpoint` sent uploads to AWS's regional
 * endpoint even when `AWS_ENDPOINT_URL_S3` pointed the SDK at a private server.
 */
import { Agent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { PutObjectCommand, S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import type { Logger } from 'pino';
import type { S3ChecksumMode } from './s3-checksums.js';
import { defaultChainHoldingFailures } from './credentials.js';

export interface S3TargetOptions {
  bucket: string;
  /** Custom endpoint (`--s3-endpoint`); otherwise the SDK's resolution (env, config file, AWS). */
  endpoint?: string | undefined;
  region?: string | undefined;
  forcePathStyle?: boolean | undefined;
  /** Static credentials (tests); the SDK's default chain (env, IRSA, instance profile) when unset. */
  credentials?: { accessKeyId: string; secretAccessKey: string } | undefined;
  checksums?: S3ChecksumMode | undefined;
  /** An idle socket for this long fails the request. */
  requestTimeoutMs: number;
  connectTimeoutMs: number;
  /** Sockets per host in each keep-alive pool. */
  maxSockets: number;
  logger?: Logger | undefined;
}

/** Where an upload goes: the base URL the object key is appended to, and the region it is signed for. */
export interface PutEndpoint {
  protocol: 'http:' | 'https:';
  hostname: string;
  /** '' for the scheme's default port. */
  port: string;
  /** Path before the object key, without a trailing slash: `/bucket` (path style) or '' (virtual-hosted), plus an endpoint's own path. */
  basePath: string;
  signingRegion: string;
}

/** The two clients' shared parts. */
export interface S3Target {
  client: S3Client;
  /** The keep-alive pool for the endpoint's scheme (the SDK is given both; only one is used). */
  agentFor(protocol: 'http:' | 'https:'): Agent;
  /** Where the SDK would send a PutObject of the bucket, resolved on first call and kept. */
  putEndpoint(): Promise<PutEndpoint>;
  destroy(): void;
}

/** Build the SDK client and the resolution both clients share. */
export function openS3Target(o: S3TargetOptions): S3Target {
  const agentOptions = { keepAlive: true, maxSockets: o.maxSockets };
  const httpAgent = new Agent(agentOptions);
  const httpsAgent = new HttpsAgent(agentOptions);
  const client = new S3Client(clientConfig(o, httpAgent, httpsAgent));
  let resolved: Promise<PutEndpoint> | undefined;
  return {
    client,
    agentFor: (protocol) => (protocol === 'http:' ? httpAgent : httpsAgent),
    putEndpoint: () => {
      // A failed resolution (credentials not there yet) is tried again on the next upload.
      resolved ??= resolvePutEndpoint(client, o.bucket).catch((err: unknown) => {
        resolved = undefined;
        throw err;
      });
      return resolved;
    },
    destroy: () => {
      client.destroy();
      httpAgent.destroy();
      httpsAgent.destroy();
    },
  };
}

function clientConfig(o: S3TargetOptions, httpAgent: Agent, httpsAgent: HttpsAgent): S3ClientConfig {
  const checksums = o.checksums === 'when_required' ? 'WHEN_REQUIRED' : 'WHEN_SUPPORTED';
  const sdkLog = (...a: unknown[]): void => o.logger?.debug({ sdk: a.map(String).join(' ') }, 'aws sdk');
  return {
    region: o.region ?? process.env.AWS_REGION ?? 'us-east-1',
    ...(o.endpoint ? { endpoint: o.endpoint } : {}),
    forcePathStyle: o.forcePathStyle ?? false,
    // Static credentials (tests), or the SDK's default chain with its failures held (credentials.ts).
    ...(o.credentials ? { credentials: o.credentials } : { credentialDefaultProvider: defaultChainHoldingFailures }),
    requestChecksumCalculation: checksums,
    responseChecksumValidation: checksums,
    // Retries are ours (counted, classified); the write-back queue retries whole files on top.
    maxAttempts: 1,
    // The SDK's own messages go to our logger at debug level, never to the console.
    logger: { debug: sdkLog, info: sdkLog, warn: sdkLog, error: sdkLog },
    requestHandler: {
      connectionTimeout: o.connectTimeoutMs,
      // An idle socket for this long fails the request: a stalled server cannot hold the queue.
      socketTimeout: o.requestTimeoutMs,
      httpAgent,
      httpsAgent,
    },
  };
}

/** Thrown by the capturing middleware to stop the request before anything is sent. */
class Captured extends Error {
  constructor(readonly endpoint: PutEndpoint) {
    super('endpoint captured');
  }
}

const PROBE_KEY = 'k';

/**
 * Run a PutObject through the SDK's own middleware up to the point where the request is built
 * (endpoint rules applied, URL serialised), read its scheme, host, port and path and the signing
 * region of the chosen auth scheme, and stop it there: nothing reaches the network.
 */
async function resolvePutEndpoint(client: S3Client, bucket: string): Promise<PutEndpoint> {
  const cmd = new PutObjectCommand({ Bucket: bucket, Key: PROBE_KEY });
  const region = await client.config.region();
  cmd.middlewareStack.add(
    (_next, context) => async (args) => {
      const req = args.request as { protocol?: string; hostname?: string; port?: number; path?: string };
      const path = req.path ?? `/${PROBE_KEY}`;
      if (!req.hostname || !path.endsWith(`/${PROBE_KEY}`)) throw new Error(`cannot read the SDK's PutObject endpoint (host ${String(req.hostname)}, path ${path})`);
      throw new Captured({
        protocol: req.protocol === 'http:' ? 'http:' : 'https:',
        hostname: req.hostname,
        port: req.port !== undefined ? String(req.port) : '',
        basePath: path.slice(0, -(PROBE_KEY.length + 1)),
        signingRegion: signingRegion(context as EndpointContext, region),
      });
    },
    { step: 'build', priority: 'high', name: 'shuffleAgentCaptureEndpoint' },
  );
  try {
    await client.send(cmd);
  } catch (err) {
    if (err instanceof Captured) return err.endpoint;
    throw err;
  }
  throw new Error('the SDK sent a request the capture should have stopped');
}

/** The part of the middleware context the SDK's endpoint middleware fills in. */
interface EndpointContext {
  endpointV2?: { properties?: { authSchemes?: Array<{ name?: string; signingRegion?: string }> } };
}

/** The region the endpoint rules chose for signing (an access point or a custom endpoint may name
 * another than the client's), else the client's. */
function signingRegion(context: EndpointContext, fallback: string): string {
  const scheme = context.endpointV2?.properties?.authSchemes?.find((s) => s.name === 'sigv4');
  return scheme?.signingRegion ?? fallback;
}
