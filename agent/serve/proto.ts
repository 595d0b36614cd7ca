/**
 * Loads `proto/shuffle_agent.proto` and describes its messages as TypeScript types, as
 * @grpc/proto-loader presents them with the options below.
 *
 * `keepCase` keeps the proto's snake_case names; `defaults` is essential: proto3 omits fields that
 * hold their default value, so without it a request for shuffle 0 or map 0 arrives with
 * `undefined` ids. int64 values arrive as decimal strings (`longs: String`), enums as their names.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export const PROTO_LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  defaults: true,
  longs: String,
  enums: String,
  oneofs: true,
};

/** The proto file: `<root>/proto/` from `agent/serve/` in the sources and `dist/agent/serve/` when built. */
export function protoPath(): string {
  for (const rel of ['../../proto/shuffle_agent.proto', '../../../proto/shuffle_agent.proto']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  throw new Error('proto/shuffle_agent.proto not found next to the agent');
}

/** An int64 as proto-loader presents it (`longs: String`); numbers are accepted when sending. */
export type Int64 = string;

export type BlockSourceName = 'BLOCK_SOURCE_UNSPECIFIED' | 'BLOCK_SOURCE_LOCAL' | 'BLOCK_SOURCE_STORE';
export type BlockFileTypeName = 'BLOCK_FILE_TYPE_UNSPECIFIED' | 'BLOCK_FILE_TYPE_DATA' | 'BLOCK_FILE_TYPE_INDEX';
export type OutputLocationName = 'OUTPUT_LOCATION_UNSPECIFIED' | 'OUTPUT_LOCATION_LOCAL' | 'OUTPUT_LOCATION_STORED' | 'OUTPUT_LOCATION_BOTH';
export type AgentStateName =
  | 'AGENT_STATE_UNSPECIFIED'
  | 'AGENT_STATE_STARTING'
  | 'AGENT_STATE_SERVING'
  | 'AGENT_STATE_DRAINING'
  | 'AGENT_STATE_SAFE_TO_EXIT'
  | 'AGENT_STATE_STOPPING';

export interface FetchShuffleBlockRequest {
  app_id: string;
  shuffle_id: number;
  map_id: Int64 | number;
  start_reduce_id: number;
  end_reduce_id: number;
}

export interface Chunk {
  data: Buffer;
  offset: Int64 | number;
  total_length: Int64 | number;
  source: BlockSourceName;
}

export interface FetchBlockFileRangeRequest {
  app_id: string;
  shuffle_id: number;
  map_id: Int64 | number;
  file: BlockFileTypeName;
  start: Int64 | number;
  length: Int64 | number;
}

export interface ListMapOutputsRequest {
  app_id: string;
  shuffle_ids: number[];
}

export interface MapOutputInfo {
  app_id: string;
  shuffle_id: number;
  map_id: Int64;
  partition_lengths: Int64[];
  data_length: Int64;
  location: OutputLocationName;
  phase: string;
  data_key: string;
  index_key: string;
}

export interface AgentStatus {
  state: AgentStateName;
  state_since_ms: Int64 | number;
  reason: string;
  deadline_ms: Int64 | number;
  pending_outputs: Int64 | number;
  pending_bytes: Int64 | number;
  persisted_outputs: Int64 | number;
  persisted_bytes: Int64 | number;
  failed_files: Int64 | number;
}

export interface DrainRequest {
  reason: string;
}

export interface DrainProgressMessage {
  status: AgentStatus;
  done: boolean;
}

/** The service definition (for the server) and the client constructor, loaded once. */
export interface LoadedProto {
  service: grpc.ServiceDefinition;
  Client: grpc.ServiceClientConstructor;
}

let loaded: LoadedProto | undefined;

export function loadProto(): LoadedProto {
  if (loaded) return loaded;
  const definition = protoLoader.loadSync(protoPath(), PROTO_LOADER_OPTIONS);
  const pkg = grpc.loadPackageDefinition(definition);
  // loadPackageDefinition returns a tree typed loosely; walk it to the service constructor.
  const v1 = (pkg.spark as grpc.GrpcObject).shuffleagent as grpc.GrpcObject;
  const Client = (v1.v1 as grpc.GrpcObject).ShuffleAgent as grpc.ServiceClientConstructor;
  loaded = { service: Client.service, Client };
  return loaded;
}

export const SERVICE_PATH = '/spark.shuffleagent.v1.ShuffleAgent';
