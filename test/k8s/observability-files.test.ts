/**
 * The Grafana dashboard and the alert rules shipped in the chart's files/: every query names a
 * metric the agent exports (or, for the plugin panels, a counter the plugin registers), every
 * label value quoted is one the agent uses, every rule has a severity and a runbook, a missing
 * or down target is covered, and `promtool check rules` accepts the file.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { AgentMetrics, INITIAL_LABELS } from '../../agent/observability/metrics.js';
import { AGENT_STATES } from '../../agent/lifecycle/agent-state.js';

const ROOT = resolve(import.meta.dirname, '../..');
const FILES = join(ROOT, 'charts/spark-shuffle-agent/files');
const DASHBOARD = join(FILES, 'grafana-dashboard.json');
const RULES = join(FILES, 'prometheus-rules.yaml');

/** Metric families the agent registers (histograms as their base name). */
function exportedMetrics(): Set<string> {
  const notCollected = (): never => {
    throw new Error('metrics are not collected in this test');
  };
  const metrics = new AgentMetrics({ writeback: notCollected, state: notCollected, states: AGENT_STATES }, { processMetrics: false });
  return new Set(metrics.registry.getMetricsAsArray().map((m) => m.name));
}

/** The counters the plugin registers (RecoveryMetrics.register). */
function pluginMetrics(): Set<string> {
  const src = readFileSync(join(ROOT, 'spark-plugin/src/main/java/io/github/sparkshuffleagent/RecoveryMetrics.java'), 'utf8');
  return new Set([...src.matchAll(/registry\.register\("(\w+)"/g)].map((m) => m[1] as string));
}

/** Check one PromQL expression; returns the names it uses. */
function checkExpr(expr: string, exported: Set<string>, plugin: Set<string>): string[] {
  const agent = [...expr.matchAll(/\b(shuffle_agent_[a-z0-9_]+)/g)].map((m) => (m[1] as string).replace(/_(bucket|sum|count)$/, ''));
  for (const name of agent) expect(exported, `${name} in ${expr}`).toContain(name);
  const fromPlugin = [...expr.matchAll(/ShuffleAgentPlugin_(\w+)_Count/g)].map((m) => m[1] as string);
  for (const name of fromPlugin) expect(plugin, `plugin counter ${name} in ${expr}`).toContain(name);
  const up = /\bup\{/.test(expr) ? ['up'] : [];
  // Label values quoted must be ones the agent emits.
  for (const m of expr.matchAll(/\bstate="(\w+)"/g)) expect(AGENT_STATES).toContain(m[1]);
  for (const m of expr.matchAll(/\bkind=~?"([\w|-]+)"/g)) {
    for (const v of (m[1] as string).split('|')) expect([...INITIAL_LABELS.writeErrorKinds, ...INITIAL_LABELS.watchProblems], `kind ${v}`).toContain(v);
  }
  for (const m of expr.matchAll(/\breason="([\w-]+)"/g)) expect(INITIAL_LABELS.dropReasons).toContain(m[1]);
  const names = [...agent, ...fromPlugin, ...up];
  expect(names.length, `a query that names no metric: ${expr}`).toBeGreaterThan(0);
  return names;
}

interface Panel {
  type: string;
  title: string;
  targets?: Array<{ expr: string }>;
}

describe('observability files', () => {
  const exported = exportedMetrics();
  const plugin = pluginMetrics();

  it('every dashboard query names metrics the agent exports (or the plugin registers)', () => {
    const dash = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { uid: string; panels: Panel[]; templating: { list: Array<{ name: string; query: unknown }> } };
    expect(dash.uid).toBe('spark-shuffle-agent');
    const exprs = dash.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    expect(exprs.length).toBeGreaterThanOrEqual(15);
    const used = new Set(exprs.flatMap((e) => checkExpr(e, exported, plugin)));
    // What the issue asks to see: lag, pending bytes, bytes stored, errors, time to safe exit, re-points and recomputes.
    for (const name of [
      'shuffle_agent_commit_to_persisted_seconds',
      'shuffle_agent_pending_bytes',
      'shuffle_agent_persisted_bytes_total',
      'shuffle_agent_writeback_errors_total',
      'shuffle_agent_drain_duration_seconds',
      'shuffle_agent_store_up',
      'outputsRepointed',
      'outputsRecomputed',
    ]) {
      expect(used, name).toContain(name);
    }
    for (const v of dash.templating.list) if (typeof v.query === 'string' && v.query.includes('(')) checkExpr(v.query, exported, plugin);
  });

  it('every rule has a severity, a summary and a runbook, uses exported metrics, and a missing target is covered', () => {
    const doc = parse(readFileSync(RULES, 'utf8')) as { groups: Array<{ name: string; rules: Array<{ alert: string; expr: string; labels?: Record<string, string>; annotations?: Record<string, string> }> }> };
    const rules = doc.groups.flatMap((g) => g.rules);
    expect(rules.length).toBeGreaterThanOrEqual(8);
    for (const r of rules) {
      expect(['critical', 'warning', 'info'], r.alert).toContain(r.labels?.severity);
      expect(r.annotations?.summary, r.alert).toBeTruthy();
      expect((r.annotations?.runbook ?? '').length, `${r.alert} runbook`).toBeGreaterThan(80);
      checkExpr(r.expr, exported, plugin);
    }
    const exprs = rules.map((r) => r.expr.replace(/\s+/g, ' '));
    expect(exprs.some((e) => /absent\(up\{/.test(e))).toBe(true);
    expect(exprs.some((e) => /^up\{[^}]*\} == 0$/.test(e))).toBe(true);
    // A single retried write error must not page anybody: error alerts need persistence or a permanent kind.
    const errorRules = rules.filter((r) => r.expr.includes('writeback_errors_total'));
    for (const r of errorRules) expect(r.expr, r.alert).toContain('kind="permanent"');
  });

  it('promtool check rules accepts the rule file', async () => {
    // Installed by scripts/setup-test-env.sh (Debian's prometheus package).
    const { stdout } = await promisify(execFile)('promtool', ['check', 'rules', RULES]);
    expect(stdout).toMatch(/SUCCESS: \d+ rules found/);
  });
});
