/**
 * Renders the Helm chart (charts/spark-shuffle-agent) with `helm template` and splits the output
 * into files: one per chart template, plus each Spark pod template taken out of the pod-templates
 * ConfigMap. The manifest tests read that; `npm run manifests` writes it to daemonset/ (plain
 * manifests for clusters installed without Helm), which a test keeps equal to a fresh render.
 *
 * It also writes examples/spark-operator/: a SparkApplication per mode with those pod templates.
 *
 *   npm run manifests     (node dist/scripts/render-chart.js)
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, stringify } from 'yaml';
import { ROOT } from '../test/kit/repo-root.js';

export { ROOT };
export const CHART = join(ROOT, 'charts', 'spark-shuffle-agent');
/** Keep in step with HELM_VERSION in scripts/setup-test-env.sh. */
export const HELM_VERSION = 'v4.3.2';
export const RELEASE = 'spark-shuffle-agent';
export const NAMESPACE = 'spark-shuffle-agent';
export type Mode = 'daemonset' | 'sidecar';

/** The helm binary the set-up script caches, else the one on PATH. */
export function helmBinary(): string {
  const cached = join(ROOT, '.cache', `helm-${HELM_VERSION}`, 'helm');
  return existsSync(cached) ? cached : 'helm';
}

/** Runs helm; throws with its stderr when it fails. */
export function helm(args: readonly string[]): string {
  const out = spawnSync(helmBinary(), args, { encoding: 'utf8', timeout: 60_000 });
  if (out.error) throw new Error(`helm ${args[0]}: ${out.error.message} (run scripts/setup-test-env.sh)`);
  if (out.status !== 0) throw new Error(`helm ${args.join(' ')} exited ${out.status}:\n${out.stderr}`);
  return out.stdout;
}

/** `helm template` of one mode; `set` are --set key=value pairs, `apiVersions` the cluster's extra APIs. */
export function template(mode: Mode, opts: { set?: readonly string[]; apiVersions?: readonly string[] } = {}): string {
  return helm([
    'template', RELEASE, CHART, '--namespace', NAMESPACE, '--set', `mode=${mode}`,
    ...(opts.set ?? []).flatMap((s) => ['--set', s]),
    ...(opts.apiVersions ?? []).flatMap((a) => ['--api-versions', a]),
  ]);
}

/**
 * helm's output as files: `<template>.yaml` holding that template's documents (helm's
 * `# Source:` comment dropped), and the pod templates under their own names.
 */
export function splitRendered(rendered: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const chunk of rendered.split(/^---\s*$/m)) {
    const m = /^# Source: [^/]+\/templates\/(.+\.yaml)\s*$/m.exec(chunk);
    if (!m) continue;
    const body = chunk.replace(m[0], '').trim();
    if (body === '') continue;
    const name = m[1] as string;
    files.set(name, files.has(name) ? `${files.get(name)}\n---\n${body}\n` : `${body}\n`);
  }
  const cm = files.get('pod-templates.yaml');
  if (cm !== undefined) {
    const data = (parseAllDocuments(cm)[0]?.toJS() as { data?: Record<string, string> } | undefined)?.data ?? {};
    for (const [name, text] of Object.entries(data)) files.set(name, text.endsWith('\n') ? text : `${text}\n`);
  }
  return files;
}

/** The Spark configuration every example job needs (README, "Spark configuration"). */
export const PLUGIN_JAR_PATH = '/opt/spark-shuffle-agent/spark-shuffle-agent-plugin.jar';
const EXAMPLE_SPARK_CONF: Record<string, string> = {
  'spark.local.dir': '/var/data/spark-local-dir-1',
  'spark.plugins': 'io.github.sparkshuffleagent.ShuffleAgentPlugin',
  'spark.shuffle.sort.io.plugin.class': 'io.github.sparkshuffleagent.AgentShuffleDataIO',
  'spark.shuffle.manager': 'io.github.sparkshuffleagent.AgentShuffleManager',
  'spark.driver.extraClassPath': PLUGIN_JAR_PATH,
  'spark.executor.extraClassPath': PLUGIN_JAR_PATH,
  'spark.decommission.enabled': 'true',
  'spark.storage.decommission.enabled': 'true',
  'spark.storage.decommission.shuffleBlocks.enabled': 'false',
  'spark.storage.decommission.fallbackStorage.path': 's3a://my-bucket/spark-fallback/',
  'spark.storage.decommission.fallbackStorage.cleanUp': 'true',
  'spark.executor.decommission.forceKillTimeout': '50s',
};

/** A pod template (a rendered Pod) as a PodTemplateSpec: spark-operator takes metadata and spec. */
function podTemplateSpec(text: string): Record<string, unknown> {
  const { metadata, spec } = parseAllDocuments(text)[0]?.toJS() as { metadata?: unknown; spec?: unknown };
  return { metadata, spec };
}

/**
 * A spark-operator SparkApplication (sparkoperator.k8s.io/v1beta2, operator 2.x) running a
 * shuffle-heavy example job with this mode's pod templates inline.
 */
function sparkApplication(mode: Mode, templates: Map<string, string>, executorTemplate: string): string {
  const version = '3.5.8';
  const app = {
    apiVersion: 'sparkoperator.k8s.io/v1beta2',
    kind: 'SparkApplication',
    metadata: { name: `group-by-shuffle-agent-${mode}`, namespace: 'spark-jobs' },
    spec: {
      type: 'Scala',
      mode: 'cluster',
      // The plugin is Java 11 bytecode: it loads on the Java 11, 17 and 21 images of Spark 3.5 and 4.x.
      image: `apache/spark:${version}`,
      imagePullPolicy: 'IfNotPresent',
      mainClass: 'org.apache.spark.examples.GroupByTest',
      mainApplicationFile: `local:///opt/spark/examples/jars/spark-examples_2.12-${version}.jar`,
      arguments: ['100', '10000', '1000', '100'],
      sparkVersion: version,
      // s3a:// for the fallback path: the Hadoop of Spark 3.5's jars is 3.3.4.
      deps: { packages: ['org.apache.hadoop:hadoop-aws:3.3.4'] },
      sparkConf: EXAMPLE_SPARK_CONF,
      restartPolicy: { type: 'Never' },
      driver: { cores: 1, memory: '1g', serviceAccount: 'spark', template: podTemplateSpec(templates.get('driver-pod-template.yaml') as string) },
      executor: { instances: 4, cores: 1, memory: '2g', template: podTemplateSpec(templates.get(executorTemplate) as string) },
    },
  };
  const header = `# GENERATED by \`npm run manifests\` (scripts/render-chart.ts) from the chart's ${mode} mode.\n# spark-operator 2.x: the pod templates of the chart's pod-templates ConfigMap, inline.\n`;
  return header + stringify(app, { lineWidth: 0 });
}

/** The examples/spark-operator/ files. */
export function renderExamples(): Map<string, string> {
  const ds = splitRendered(template('daemonset', { set: ['appKey.existingSecret=spark-shuffle-agent-app-key'] }));
  const sc = splitRendered(template('sidecar'));
  return new Map([
    ['sparkapplication-daemonset.yaml', sparkApplication('daemonset', ds, 'executor-pod-template-daemonset.yaml')],
    ['sparkapplication-sidecar.yaml', sparkApplication('sidecar', sc, 'executor-pod-template.yaml')],
  ]);
}

/**
 * What daemonset/ holds: the DaemonSet mode's objects (the app key as a Secret you create, so the
 * output is the same at every render) and the pod templates of both modes.
 */
export function renderManifests(): Map<string, string> {
  const fixed = ['appKey.existingSecret=spark-shuffle-agent-app-key', 'metrics.podMonitor.enabled=true'];
  const ds = splitRendered(template('daemonset', { set: fixed }));
  const sc = splitRendered(template('sidecar'));
  ds.delete('pod-templates.yaml');
  for (const name of ['executor-pod-template.yaml', 'executor-pod-template-no-native-sidecar.yaml']) {
    const text = sc.get(name);
    if (text === undefined) throw new Error(`sidecar mode rendered no ${name}`);
    ds.set(name, text);
  }
  const header = '# GENERATED from charts/spark-shuffle-agent by `npm run manifests` (mode and values in\n# scripts/render-chart.ts); edit the chart, not this file.\n';
  return new Map([...ds].map(([name, text]) => [name, header + text]));
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const [out, files] of [[join(ROOT, 'daemonset'), renderManifests()], [join(ROOT, 'examples', 'spark-operator'), renderExamples()]] as const) {
    mkdirSync(out, { recursive: true });
    for (const f of readdirSync(out)) if (f.endsWith('.yaml')) rmSync(join(out, f));
    for (const [name, text] of files) writeFileSync(join(out, name), text);
    console.log(`wrote ${files.size} files to ${out}`);
  }
}
