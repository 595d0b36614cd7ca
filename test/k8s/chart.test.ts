/**
 * The Helm chart beyond what manifests.test.ts checks on its DaemonSet-mode render: `helm lint`,
 * values.schema.json refusing bad values, each mode's objects, the Secret generated or referenced,
 * monitoring objects only where the cluster serves their CRDs, the autoscaler annotations on the
 * rendered executor pods, and one version everywhere.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import type { IPod } from 'kubernetes-models/v1/Pod';
import type { IDaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { CHART, helm, NAMESPACE, RELEASE, ROOT, splitRendered, template, type Mode } from '../../scripts/render-chart.js';
import { hasModel, unknownKeys } from './model-keys.js';
import { AGENT_UID, SPARK_GID } from './agent-uid.js';

interface Doc {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

/** Cluster-scoped kinds the chart renders: no namespace in their metadata. */
const CLUSTER_SCOPED = new Set(['ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding']);
const PROMETHEUS_CRDS = ['monitoring.coreos.com/v1/PodMonitor', 'monitoring.coreos.com/v1/PrometheusRule'];
const SAFE_TO_EVICT = 'cluster-autoscaler.kubernetes.io/safe-to-evict';
const DO_NOT_DISRUPT = 'karpenter.sh/do-not-disrupt';

function docs(mode: Mode, opts: { set?: string[]; apiVersions?: string[] } = {}): Doc[] {
  return parseAllDocuments(template(mode, opts))
    .map((d) => d.toJS() as Doc | null)
    .filter((d): d is Doc => d !== null);
}

function kinds(ds: Doc[]): string[] {
  return ds.map((d) => d.kind).sort();
}

/** The pod templates of a render, parsed. */
function podTemplates(mode: Mode, set: string[] = []): Map<string, IPod> {
  const files = splitRendered(template(mode, { set }));
  return new Map([...files].filter(([name]) => name.endsWith('-pod-template.yaml') || name.includes('-pod-template-')).map(([name, text]) => [name, parse(text) as IPod]));
}

function helmFails(args: string[]): string {
  try {
    helm(args);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error(`helm ${args.join(' ')} succeeded`);
}

describe('Helm chart charts/spark-shuffle-agent', () => {
  it('helm lint --strict is clean in both modes', () => {
    for (const mode of ['daemonset', 'sidecar']) {
      const out = helm(['lint', CHART, '--strict', '--set', `mode=${mode}`, '--namespace', NAMESPACE]);
      expect(out).toContain('0 chart(s) failed');
      expect(out).not.toMatch(/\[(WARNING|ERROR)\]/);
    }
  });

  it('values.schema.json refuses what would break an install', () => {
    expect(helmFails(['template', RELEASE, CHART, '--set', 'mode=both'])).toMatch(/mode/);
    // The agent must not run as Spark's uid (issue 17 item 10), nor as root.
    expect(helmFails(['template', RELEASE, CHART, '--set', 'securityContext.runAsUser=185'])).toMatch(/runAsUser/);
    expect(helmFails(['template', RELEASE, CHART, '--set', 'securityContext.runAsUser=0'])).toMatch(/runAsUser/);
    expect(helmFails(['template', RELEASE, CHART, '--set', 'store=my-bucket'])).toMatch(/store/);
    expect(helmFails(['template', RELEASE, CHART, '--set', 'terminationSources=sigterm,ibm'])).toMatch(/terminationSources/);
    // The admission policy quotes hostDir inside CEL strings: a quote there would break it.
    expect(helmFails(['template', RELEASE, CHART, '--set', "hostDir=/var/lib/a'b"])).toMatch(/hostDir/);
    expect(helmFails(['template', RELEASE, CHART, '--set', 'admissionPolicy.enabled=maybe'])).toMatch(/admissionPolicy/);
    // A misspelled key is an error, not silently ignored.
    expect(helmFails(['template', RELEASE, CHART, '--set', 'drainTimeout=30'])).toMatch(/drainTimeout/);
  });

  it('every rendered object of both modes validates against kubernetes-models with no unknown key, in the release namespace (unless cluster-scoped)', async () => {
    for (const mode of ['daemonset', 'sidecar'] as const) {
      for (const doc of docs(mode, { set: ['metrics.grafanaDashboard.enabled=true'], apiVersions: PROMETHEUS_CRDS })) {
        expect(doc.metadata.namespace, `${doc.kind} ${doc.metadata.name}`).toBe(CLUSTER_SCOPED.has(doc.kind) ? undefined : NAMESPACE);
        expect(doc.metadata.labels?.['app.kubernetes.io/managed-by']).toBe('Helm');
        if (doc.apiVersion.startsWith('monitoring.coreos.com/')) continue;
        expect(hasModel(doc.apiVersion, doc.kind), `${doc.apiVersion} ${doc.kind}`).toBe(true);
        const mod = (await import(`kubernetes-models/${doc.apiVersion}/${doc.kind}`)) as Record<string, new (data: unknown) => { validate(): void }>;
        const Model = mod[doc.kind] as new (data: unknown) => { validate(): void };
        expect(() => new Model(doc).validate(), `${mode}: ${doc.kind}`).not.toThrow();
        expect(unknownKeys(doc), `${mode}: ${doc.kind}`).toEqual([]);
      }
    }
  });

  it('DaemonSet mode: the agent objects, the admission policy and a generated app-key Secret the DaemonSet mounts; an existing Secret replaces it', () => {
    const ds = docs('daemonset');
    expect(kinds(ds)).toEqual(['ConfigMap', 'ConfigMap', 'DaemonSet', 'NetworkPolicy', 'Secret', 'Service', 'ServiceAccount', 'ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding']);
    const secret = ds.find((d) => d.kind === 'Secret') as Doc & { data: { key: string } };
    expect(Buffer.from(secret.data.key, 'base64').length, 'at least the 32 bytes the agent requires').toBeGreaterThanOrEqual(32);
    expect(secret.metadata.annotations?.['helm.sh/resource-policy']).toBe('keep');
    const daemonSet = ds.find((d) => d.kind === 'DaemonSet') as unknown as IDaemonSet;
    const volume = daemonSet.spec?.template.spec?.volumes?.find((v) => v.name === 'app-key');
    expect(volume?.secret?.secretName).toBe(secret.metadata.name);

    const own = docs('daemonset', { set: ['appKey.existingSecret=my-key'] });
    expect(own.filter((d) => d.kind === 'Secret')).toEqual([]);
    const ownDs = own.find((d) => d.kind === 'DaemonSet') as unknown as IDaemonSet;
    expect(ownDs.spec?.template.spec?.volumes?.find((v) => v.name === 'app-key')?.secret?.secretName).toBe('my-key');
  });

  it('sidecar mode: no node agent, only the pod templates with the agent as a native sidecar (and a regular-container variant)', () => {
    const sc = docs('sidecar');
    expect(kinds(sc)).toEqual(['ConfigMap']);
    expect(Object.keys((sc[0] as Doc & { data: Record<string, string> }).data).sort()).toEqual([
      'driver-pod-template.yaml',
      'executor-pod-template-no-native-sidecar.yaml',
      'executor-pod-template.yaml',
    ]);
  });

  it('PodMonitor and PrometheusRule: absent unless the cluster serves their CRDs; forced on or off by value', () => {
    const monitoring = (ds: Doc[]): string[] => kinds(ds.filter((d) => d.apiVersion === 'monitoring.coreos.com/v1'));
    expect(monitoring(docs('daemonset'))).toEqual([]);
    expect(monitoring(docs('daemonset', { apiVersions: PROMETHEUS_CRDS }))).toEqual(['PodMonitor', 'PrometheusRule']);
    expect(monitoring(docs('daemonset', { apiVersions: PROMETHEUS_CRDS, set: ['metrics.podMonitor.enabled=false'] }))).toEqual(['PrometheusRule']);
    expect(monitoring(docs('sidecar', { set: ['metrics.podMonitor.enabled=true'] }))).toEqual(['PodMonitor']);

    // The rule object wraps the plain `groups:` document in files/ unchanged.
    const rule = docs('daemonset', { apiVersions: PROMETHEUS_CRDS }).find((d) => d.kind === 'PrometheusRule') as Doc & { spec: unknown };
    const groups = parse(readFileSync(join(CHART, 'files', 'prometheus-rules.yaml'), 'utf8')) as { groups: unknown[] };
    expect(groups.groups.length).toBeGreaterThan(0);
    expect(rule.spec).toEqual(groups);

    // Sidecar mode scrapes the executor pods, which Spark labels spark-role=executor.
    const pm = docs('sidecar', { set: ['metrics.podMonitor.enabled=true'] }).find((d) => d.kind === 'PodMonitor') as Doc & { spec: { selector: { matchLabels: Record<string, string> } } };
    const exec = podTemplates('sidecar').get('executor-pod-template.yaml') as IPod;
    for (const [k, v] of Object.entries(pm.spec.selector.matchLabels)) {
      if (k !== 'spark-role') expect(exec.metadata?.labels?.[k], k).toBe(v);
    }
    expect(pm.spec.selector.matchLabels['spark-role']).toBe('executor');
  });

  it('the Grafana dashboard ConfigMap carries the sidecar label and the dashboard JSON', () => {
    expect(docs('daemonset').filter((d) => d.metadata.name.endsWith('-dashboard'))).toEqual([]);
    const cm = docs('daemonset', { set: ['metrics.grafanaDashboard.enabled=true'] }).find((d) => d.metadata.name.endsWith('-dashboard')) as Doc & { data: Record<string, string> };
    expect(cm.metadata.labels?.grafana_dashboard).toBe('1');
    const json = JSON.parse(cm.data['spark-shuffle-agent.json'] as string) as { title: string };
    expect(json).toEqual(JSON.parse(readFileSync(join(CHART, 'files', 'grafana-dashboard.json'), 'utf8')));
  });

  it('executor pods carry the autoscaler settings the README explains: safe to evict, not do-not-disrupt, both switchable', () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    for (const key of [SAFE_TO_EVICT, DO_NOT_DISRUPT, 'executor.safeToEvict', 'executor.doNotDisrupt']) expect(readme, key).toContain(key);
    for (const mode of ['daemonset', 'sidecar'] as const) {
      const execs = [...podTemplates(mode)].filter(([name]) => name.startsWith('executor-'));
      expect(execs.length).toBeGreaterThan(0);
      for (const [name, pod] of execs) {
        expect(pod.metadata?.annotations?.[SAFE_TO_EVICT], `${mode} ${name}`).toBe('true');
        expect(pod.metadata?.annotations?.[DO_NOT_DISRUPT], `${mode} ${name}`).toBeUndefined();
      }
      for (const [name, pod] of podTemplates(mode, ['executor.safeToEvict=false', 'executor.doNotDisrupt=true'])) {
        if (!name.startsWith('executor-')) continue;
        expect(pod.metadata?.annotations?.[SAFE_TO_EVICT], `${mode} ${name}`).toBeUndefined();
        expect(pod.metadata?.annotations?.[DO_NOT_DISRUPT], `${mode} ${name}`).toBe('true');
      }
    }
  });

  it('the agent runs as its own uid in Spark\'s group in every mode, and no agent container runs as Spark\'s uid', () => {
    for (const mode of ['daemonset', 'sidecar'] as const) {
      const text = template(mode);
      const agentContainers: { runAsUser?: number }[] = [];
      for (const d of parseAllDocuments(text).map((x) => x.toJS() as Doc)) {
        if (d.kind === 'DaemonSet') {
          const spec = (d as unknown as IDaemonSet).spec?.template.spec;
          expect(spec?.securityContext?.supplementalGroups).toContain(SPARK_GID);
          for (const c of spec?.containers ?? []) agentContainers.push(c.securityContext ?? {});
        }
      }
      for (const [name, pod] of podTemplates(mode)) {
        for (const c of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) {
          if (c.image === undefined) continue; // Spark's own container: Spark sets it
          agentContainers.push(c.securityContext ?? {});
          if (c.name === 'shuffle-agent') expect(pod.spec?.securityContext?.supplementalGroups, `${mode} ${name}`).toContain(SPARK_GID);
        }
      }
      expect(agentContainers.length).toBeGreaterThan(0);
      for (const sc of agentContainers) expect(sc.runAsUser, mode).toBe(AGENT_UID);
    }
  });

  it('one version: Chart.yaml version and appVersion, the Maven project and the default image tag all say package.json\'s', () => {
    const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    const chart = parse(readFileSync(join(CHART, 'Chart.yaml'), 'utf8')) as { version: string; appVersion: string };
    expect(chart.version).toBe(version);
    expect(chart.appVersion).toBe(version);
    const pom = readFileSync(join(ROOT, 'spark-plugin', 'pom.xml'), 'utf8');
    expect(/<artifactId>spark-shuffle-agent-plugin<\/artifactId>\s*<version>([^<]+)<\/version>/.exec(pom)?.[1]).toBe(version);
    const images = [...template('daemonset').matchAll(/image: (\S+)/g)].map((m) => m[1]);
    expect(images.length).toBeGreaterThan(0);
    for (const image of images) expect(image).toBe(`ghcr.io/spark-shuffle-agent/spark-shuffle-agent:${version}`);
    // A digest pins the image instead of the tag.
    const digest = `sha256:${'a'.repeat(64)}`;
    expect(template('sidecar', { set: [`image.digest=${digest}`] })).toContain(`spark-shuffle-agent@${digest}`);
  });
});
