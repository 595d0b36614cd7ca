/** From the `--grpc-*` settings of `shuffle-agent run` to the server's options (files read here). */
import { readFile } from 'node:fs/promises';
import { ConfigError } from '../config/option-table.js';
import { tokenFromFile, type TlsFiles } from './auth.js';
import type { GrpcServerOptions } from './server.js';

export interface GrpcSettings {
  grpcListen: { host: string; port: number };
  grpcTlsCert?: string | undefined;
  grpcTlsKey?: string | undefined;
  grpcTlsClientCa?: string | undefined;
  grpcTokenFile?: string | undefined;
  grpcMaxStreams: number;
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
  return {
    host: settings.grpcListen.host,
    port: settings.grpcListen.port,
    maxStreams: settings.grpcMaxStreams,
    chunkSize: settings.grpcChunkSize,
    ...(settings.grpcMaxBuffered !== undefined ? { maxBufferedBytes: settings.grpcMaxBuffered } : {}),
    ...(tls ? { tls } : {}),
    ...(token !== undefined ? { token } : {}),
  };
}

async function readSetting(key: string, path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new ConfigError(key, `cannot read ${path}: ${(err as Error).message}`);
  }
}
