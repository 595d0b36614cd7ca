import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { renderReadme } from '../../scripts/readme-config.js';
import { RUN_OPTIONS } from '../../agent/config/run-options.js';

const readme = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');

describe('README', () => {
  it('has the configuration reference generated from the option table', () => {
    expect(renderReadme(readme)).toBe(readme);
    for (const spec of Object.values(RUN_OPTIONS)) expect(readme).toContain(`\`--${spec.flag}\``);
  });

  it('shows the two set-up commands on its first screen', () => {
    const firstScreen = readme.split('\n').slice(0, 40).join('\n');
    expect(firstScreen).toContain('npm install && npm start');
    expect(firstScreen).toContain('npm test');
  });
});

describe('README metrics list', () => {
  it('names every metric the agent registers', async () => {
    const { AgentMetrics } = await import('../../agent/observability/metrics.js');
    const m = new AgentMetrics({ writeback: () => ({ pendingOutputs: 0, pendingFiles: 0, pendingBytes: 0, uploadingOutputs: 0, heldOutputs: 0, persistedOutputs: 0, persistedFiles: 0, persistedBytes: 0, failedFiles: 0, droppedOutputs: 0, failed: [], rejectedOutputs: 0, rejected: [] }), state: () => 'serving', states: ['serving'] }, { processMetrics: false });
    const names = (await m.registry.getMetricsAsJSON()).map((x) => x.name);
    expect(names.length).toBeGreaterThan(20);
    const missing = names.filter((n) => {
      const short = n.replace(/^shuffle_agent/, '');
      return !readme.includes(`\`${n}`) && !readme.includes(`\`${short}`);
    });
    expect(missing).toEqual([]);
  });
});
