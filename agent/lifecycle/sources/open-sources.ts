/** Build the termination sources `--termination-sources` names. */
import type { Logger } from 'pino';
import type { SourceMetrics, TerminationSource, TerminationSourceName } from '../notice.js';
import { AwsImdsSource } from './aws-imds.js';
import { AzureScheduledEventsSource } from './azure-scheduled-events.js';
import { GcpMetadataSource } from './gcp-metadata.js';
import { SignalSource } from './signal-source.js';

export interface SourceConfig {
  terminationSources: readonly TerminationSourceName[];
  awsMetadataEndpoint: string;
  gcpMetadataEndpoint: string;
  azureMetadataEndpoint: string;
  /** Seconds. */
  noticePollInterval: number;
  /** Seconds. */
  metadataTimeout: number;
  awsTokenTtl: number;
}

export function openSources(config: SourceConfig, logger?: Logger, metrics?: SourceMetrics): TerminationSource[] {
  const common = {
    pollIntervalMs: config.noticePollInterval * 1000,
    requestTimeoutMs: config.metadataTimeout * 1000,
    ...(logger ? { logger } : {}),
    ...(metrics ? { metrics } : {}),
  };
  return config.terminationSources.map((name): TerminationSource => {
    switch (name) {
      case 'sigterm':
        return new SignalSource();
      case 'aws':
        return new AwsImdsSource({ ...common, endpoint: config.awsMetadataEndpoint, tokenTtlSeconds: config.awsTokenTtl });
      case 'gcp':
        return new GcpMetadataSource({ ...common, endpoint: config.gcpMetadataEndpoint });
      case 'azure':
        return new AzureScheduledEventsSource({ ...common, endpoint: config.azureMetadataEndpoint });
    }
  });
}
