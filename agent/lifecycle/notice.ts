/**
 * The one normalised shape every termination source produces, and the interface of a source.
 * Sources only detect: they turn what they see (a signal, a metadata document) into notices.
 * The notice store decides what a notice means; the drain handler acts.
 */

/** Where a notice came from. `http` and `grpc` are explicit drain requests. */
export type NoticeSource = 'signal' | 'aws' | 'gcp' | 'azure' | 'http' | 'grpc';

/** The termination sources `--termination-sources` can name. */
export const TERMINATION_SOURCES = ['sigterm', 'aws', 'gcp', 'azure'] as const;
export type TerminationSourceName = (typeof TERMINATION_SOURCES)[number];

export type NoticeKind =
  /** This process must stop (SIGTERM, SIGINT): drain until `--drain-timeout`, then exit. */
  | 'exit'
  /** The machine goes away at `deadline` (spot interruption, preemption, scheduled event): drain and stay up. */
  | 'terminate'
  /** An early warning (AWS rebalance recommendation): write back faster; drain only if configured. */
  | 'rebalance'
  /** An explicit request (`POST /v1/drain`, the gRPC Drain call, `wait-safe-exit`). */
  | 'drain';

export interface TerminationNotice {
  /** Stable for one underlying notice, so that polling it again de-duplicates. Unique per source. */
  id: string;
  kind: NoticeKind;
  source: NoticeSource;
  /** When the process or machine goes away (ms since epoch), when the source says. */
  deadline?: number;
  /** What the source saw (action, event type...), for logs and the status document. */
  detail?: Record<string, string | number | boolean>;
}

export type EmitNotice = (notice: TerminationNotice) => void;

/** Something that detects termination. `run` returns when `signal` aborts and never rejects for
 * an unreachable or misbehaving endpoint: it logs, counts and tries again. */
export interface TerminationSource {
  readonly name: TerminationSourceName;
  run(emit: EmitNotice, signal: AbortSignal): Promise<void>;
}

/** A source whose notices are acknowledged once the agent is safe to exit (Azure StartRequests). */
export interface AcknowledgingSource extends TerminationSource {
  acknowledge(notice: TerminationNotice, signal: AbortSignal): Promise<void>;
}

export function isAcknowledging(source: TerminationSource): source is AcknowledgingSource {
  return typeof (source as Partial<AcknowledgingSource>).acknowledge === 'function';
}

/** What sources report besides notices: failures to reach or understand their endpoint. */
export interface SourceMetrics {
  metadataError(source: string, kind: string): void;
}

/** A notice as JSON for logs, status and the marker file. */
export function describeNotice(notice: TerminationNotice): Record<string, unknown> {
  return {
    id: notice.id,
    kind: notice.kind,
    source: notice.source,
    ...(notice.deadline !== undefined ? { deadline: new Date(notice.deadline).toISOString() } : {}),
    ...(notice.detail ? { detail: notice.detail } : {}),
  };
}
