import { describe, expect, it } from 'vitest';
import { AgentMetrics } from '../../agent/observability/metrics.js';
import { AGENT_STATES } from '../../agent/lifecycle/agent-state.js';

describe('termination metrics', () => {
  it('counts notices by source and kind, metadata errors, drains and their duration; state as a gauge', async () => {
    const status = { pendingOutputs: 0, pendingFiles: 0, pendingBytes: 0, uploadingOutputs: 0, persistedOutputs: 0, persistedFiles: 0, persistedBytes: 0, failedFiles: 0, droppedOutputs: 0, heldOutputs: 0, failed: [], rejectedOutputs: 0, rejected: [] };
    const m = new AgentMetrics({ writeback: () => status, state: () => 'draining', states: AGENT_STATES }, { processMetrics: false });
    m.noticeReceived('aws', 'terminate');
    m.noticeReceived('aws', 'terminate');
    m.noticeReceived('signal', 'exit');
    m.metadataError('gcp', 'timeout');
    m.drainStarted();
    m.safeToExit(1.5);
    m.exiting(3);
    const text = await m.registry.metrics();
    expect(text).toContain('shuffle_agent_termination_notices_total{source="aws",kind="terminate"} 2');
    expect(text).toContain('shuffle_agent_termination_notices_total{source="signal",kind="exit"} 1');
    expect(text).toContain('shuffle_agent_metadata_errors_total{source="gcp",kind="timeout"} 1');
    expect(text).toContain('shuffle_agent_drains_total 1');
    expect(text).toContain('shuffle_agent_drain_duration_seconds_sum 1.5');
    expect(text).toContain('shuffle_agent_outputs_not_stored_at_exit 3');
    expect(text).toContain('shuffle_agent_state{state="draining"} 1');
    expect(text).toContain('shuffle_agent_state{state="stopping"} 0');
  });
});
