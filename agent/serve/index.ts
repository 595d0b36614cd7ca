/** The gRPC block service: what main.ts and cli.ts use. */
export { startGrpcServer, type GrpcServerDeps, type GrpcServerOptions, type RunningGrpcServer } from './server.js';
export { grpcServerOptions, type GrpcSettings } from './config.js';
export { ShuffleAgentClient, type ShuffleAgentClientOptions } from './client.js';
export type { AgentState, BlockSourceKind, DrainProgress, LifecycleView, OutputLookup, ServeMetrics, StatusSnapshot } from './types.js';
export { TokenFile } from './token-file.js';
