/**
 * The README tells SREs what to alert on: every metric it names must be one the agent exports,
 * with the label values it quotes, so the guide cannot drift from the code.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AgentMetrics, METRIC_PREFIX } from '../../agent/observability/metrics.js';
import { AGENT_STATES } from '../../agent/lifecycle/agent-state.js';

const DOC = readFileSync(join(resolve(import.meta.dirname, '../..'), 'README.md'), 'utf8');

describe('README (Kubernetes section)', () => {
  it('names only metrics the agent exports', () => {
    // Names are registered in the constructor; nothing is collected, so the sources are never read.
    const notCollected = (): never => {
      throw new Error('metrics are not collected in this test');
    };
    const metrics = new AgentMetrics({ writeback: notCollected, state: notCollected, states: AGENT_STATES }, { processMetrics: false });
    const exported = new Set(metrics.registry.getMetricsAsArray().map((m) => m.name));
    const named = new Set([...DOC.matchAll(new RegExp(`\\b${METRIC_PREFIX}[a-z_]+`, 'g'))].map((m) => m[0].replace(/_(bucket|sum|count)$/, '')).filter((n) => !n.endsWith('_'))); // `prefix_*` families are process metrics
    expect(named.size).toBeGreaterThanOrEqual(8);
    for (const name of named) expect(exported, name).toContain(name);
    // Label values quoted in the alerts.
    for (const m of DOC.matchAll(/shuffle_agent_state\{state="(\w+)"\}/g)) expect(AGENT_STATES).toContain(m[1]);
    const queue = readFileSync(join(resolve(import.meta.dirname, '../..'), 'agent/writeback/writeback-queue.ts'), 'utf8');
    const reasons = [...DOC.matchAll(/reason="([\w-]+)"/g)].map((m) => m[1] as string);
    expect(reasons.length).toBeGreaterThan(0);
    for (const r of reasons) expect(queue, `drop reason ${r}`).toContain(`'${r}'`);
  });
});
