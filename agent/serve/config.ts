/** From the `--grpc-*` settings of `shuffle-agent run` to the server's options (files read here). */
import { readFile } from 'node:fs/promises';
import { ConfigError } from '../util/errors.js';
import { tokenFromFile, type TlsFiles } from './auth.js';
import type { GrpcServerOptions } from './server.js';

export interface GrpcSettings {
  grpcListen: { host: string; port: number };
  grpcTlsCert?: string | undefined;
  grpcTlsKey?: string | undefined;
  grpcTlsClientCa?: string | undefined;
  grpcTokenFile?: string | undefined;
  grpcAppKeyFile?: string | undefined;
  grpcMaxStreams: number;
  grpcMaxStreamsPerConnection?: number | undefined;
  grpcMaxConnections?: number | undefined;
  /** Seconds; 0: never. */
  grpcIdleTimeout?: number | undefined;
  /** Seconds. */
  grpcRequestBodyTimeout?: number | undefined;
  grpcChunkSize: number;
  grpcMaxBuffered?: number | undefined;
}

/** Read the certificate, key, CA and token files; fail fast with the key that is wrong. */
export async function grpcServerOptions(settings: GrpcSettings): Promise<GrpcServerOptions> {
  const { grpcTlsCert: cert, grpcTlsKey: key, grpcTlsClientCa: ca, grpcTokenFile: tokenFile } = settings;
  if ((cert === undefined) !== (key === undefined)) throw new ConfigError(cert === undefined ? 'grpcTlsCert' : 'grpcTlsKey', '--grpc-tls-cert and --grpc-tls-key go together');
  if (ca !== undefined && cert === undefined) throw new ConfigError('grpcTlsClientCa', '--grpc-tls-client-ca needs --grpc-tls-cert and --grpc-tls-key');
  let tls: TlsFiles | undefined;
  if (cert !== undefined && key !== undefined) {
    tls = { cert: await readSetting('grpcTlsCert', cert), key: await readSetting('grpcTlsKey', key) };
    if (ca !== undefined) tls.clientCa = await readSetting('grpcTlsClientCa', ca);
  }
  let token: string | undefined;
  if (tokenFile !== undefined) {
    token = tokenFromFile((await readSetting('grpcTokenFile', tokenFile)).toString('utf8'));
    if (token === '') throw new ConfigError('grpcTokenFile', `--grpc-token-file ${tokenFile} is empty`);
  }
  let appKeys: Buffer[] | undefined;
  if (settings.grpcAppKeyFile !== undefined) {
    const parsed = appKeysFromFile(await readSetting('grpcAppKeyFile', settings.grpcAppKeyFile));
    if (typeof parsed === 'string') throw new ConfigError('grpcAppKeyFile', `--grpc-app-key-file ${settings.grpcAppKeyFile}: ${parsed}`);
    appKeys = parsed;
  }
  return {
    host: settings.grpcListen.host,
    port: settings.grpcListen.port,
    maxStreams: settings.grpcMaxStreams,
    chunkSize: settings.grpcChunkSize,
    ...(settings.grpcMaxBuffered !== undefined ? { maxBufferedBytes: settings.grpcMaxBuffered } : {}),
    ...(tls ? { tls } : {}),
    ...(token !== undefined ? { token } : {}),
    ...(appKeys !== undefined ? { appKeys } : {}),
    ...(settings.grpcMaxStreamsPerConnection !== undefined ? { maxStreamsPerConnection: settings.grpcMaxStreamsPerConnection } : {}),
    ...(settings.grpcMaxConnections !== undefined ? { maxConnections: settings.grpcMaxConnections } : {}),
    ...(settings.grpcIdleTimeout !== undefined ? { idleTimeoutMs: settings.grpcIdleTimeout * 1000 } : {}),
    ...(settings.grpcRequestBodyTimeout !== undefined ? { requestBodyTimeoutMs: settings.grpcRequestBodyTimeout * 1000 } : {}),
  };
}

/** A per-app token key shorter than this is refused: HMAC-SHA256 wants 32 bytes of secret. */
export const MIN_APP_KEY_BYTES = 32;

/**
 * The keys in a key file, one per line (surrounding whitespace and empty lines ignored): the first
 * signs new tokens, every one verifies (a rotation's overlap: README, "Rotating the cluster key").
 * A string says what is wrong (no key, a key shorter than MIN_APP_KEY_BYTES, more than 4 keys).
 */
export function appKeysFromFile(content: Buffer): Buffer[] | string {
  const lines = content.toString('utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '');
  if (lines.length === 0) return 'holds no key';
  if (lines.length > 4) return `holds ${lines.length} keys; at most 4 (the signing key first, then the ones still accepted)`;
  const keys = lines.map((l) => Buffer.from(l, 'utf8'));
  const short = keys.findIndex((k) => k.length < MIN_APP_KEY_BYTES);
  if (short >= 0) return `key ${short + 1} holds ${(keys[short] as Buffer).length} bytes; at least ${MIN_APP_KEY_BYTES} (openssl rand -hex 32)`;
  return keys;
}

async function readSetting(key: string, path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new ConfigError(key, `cannot read ${path}: ${(err as Error).message}`);
  }
}
