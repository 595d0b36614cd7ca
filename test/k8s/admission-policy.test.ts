/**
 * The admission policy the agent's tenancy rests on (the chart's templates/admission-policy.yaml,
 * rendered into daemonset/admission-policy.yaml, which manifests.test.ts keeps equal), evaluated:
 * its very CEL expressions run (with @bufbuild/cel) against the executor templates, which must
 * pass, and against the pods a tenant would write to read or impersonate another namespace's
 * directory, each of which must be refused. Kubernetes' own CEL environment type-checks the same
 * expressions at admission; this checks what they decide.
 */
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { run, type CelInput } from '@bufbuild/cel';
import { CHART, helm, RELEASE, renderManifests, splitRendered, template } from '../../scripts/render-chart.js';

/** daemonset/ as the chart renders it. */
const RENDERED = renderManifests();

interface Policy {
  spec: {
    variables: Array<{ name: string; expression: string }>;
    validations: Array<{ expression: string; message: string }>;
    matchConstraints: { resourceRules: Array<{ resources: string[]; operations: string[] }> };
  };
}
interface Binding {
  spec: { policyName: string; validationActions: string[]; matchResources: { namespaceSelector: { matchExpressions: Array<{ key: string; operator: string; values: string[] }> } } };
}

function parsePolicy(text: string | undefined): { policy: Policy & { metadata: { name: string } }; binding: Binding } {
  if (text === undefined) throw new Error('the chart rendered no admission-policy.yaml');
  const docs = parseAllDocuments(text).map((d) => d.toJS() as { kind: string; metadata: { name: string } });
  return {
    policy: docs.find((d) => d.kind === 'ValidatingAdmissionPolicy') as unknown as Policy & { metadata: { name: string } },
    binding: docs.find((d) => d.kind === 'ValidatingAdmissionPolicyBinding') as unknown as Binding,
  };
}
const { policy, binding } = parsePolicy(RENDERED.get('admission-policy.yaml'));

/** JSON-like YAML to CEL input: objects become maps (CEL's `has()` and field access work on them). */
function cel(v: unknown): CelInput {
  if (Array.isArray(v)) return v.map(cel);
  if (v !== null && typeof v === 'object') return new Map(Object.entries(v).map(([k, x]) => [k, cel(x)]));
  return v as CelInput;
}

/** The messages of the validations `pod` fails (empty: admitted). */
function refusals(pod: unknown, p: Policy = policy): string[] {
  const object = cel(pod);
  const variables = new Map<string, CelInput>();
  for (const v of p.spec.variables) variables.set(v.name, run(v.expression, { object, variables }) as CelInput);
  return p.spec.validations
    .filter((x) => {
      const got = run(x.expression, { object, variables });
      // An evaluation error would also be a refusal at admission, but here it would hide a wrong expression.
      if (typeof got !== 'boolean') throw new Error(`${x.expression} gave ${String(got)}`);
      return !got;
    })
    .map((x) => x.message);
}

function podTemplate(file: string, files: Map<string, string> = RENDERED): Record<string, unknown> {
  const text = files.get(file);
  if (text === undefined) throw new Error(`the chart rendered no ${file}`);
  return parseAllDocuments(text)[0]?.toJS() as Record<string, unknown>;
}

/** The DaemonSet executor template, changed by `edit` (a deep copy). */
function executor(edit: (pod: { spec: PodSpec }) => void = () => undefined): unknown {
  const pod = structuredClone(podTemplate('executor-pod-template-daemonset.yaml')) as { spec: PodSpec };
  edit(pod);
  return pod;
}
interface Env {
  name: string;
  value?: string;
  valueFrom?: { fieldRef?: { fieldPath: string } };
}
interface Container {
  name: string;
  env?: Env[];
  volumeMounts?: Array<{ name: string; mountPath: string; subPath?: string; subPathExpr?: string }>;
}
interface PodSpec {
  volumes: Array<{ name: string; hostPath?: { path: string; type?: string } }>;
  containers: Container[];
  initContainers?: Container[];
  ephemeralContainers?: Container[];
  hostNetwork?: boolean;
}
const spark = (pod: { spec: PodSpec }): Container => pod.spec.containers[0] as Container;
const localMount = (c: Container): NonNullable<Container['volumeMounts']>[number] => (c.volumeMounts ?? []).find((m) => m.name === 'spark-local-dir-1') as NonNullable<Container['volumeMounts']>[number];

describe('admission policy (chart templates/admission-policy.yaml, daemonset/admission-policy.yaml)', () => {
  it('is bound, denies, and spares only the agent namespace; every expression is a string (YAML reads `a ? b : c` unquoted as a mapping)', () => {
    for (const x of [...policy.spec.variables, ...policy.spec.validations]) expect(typeof x.expression).toBe('string');
    expect(policy.spec.matchConstraints.resourceRules).toEqual([expect.objectContaining({ resources: ['pods'], operations: ['CREATE', 'UPDATE'] })]);
    expect(binding.spec.policyName).toBe(policy.metadata.name);
    expect(binding.spec.validationActions).toEqual(['Deny']);
    expect(binding.spec.matchResources.namespaceSelector.matchExpressions).toEqual([{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['spark-shuffle-agent'] }]);
  });

  it('admits the executor templates of every mode, and pods without the host directory', () => {
    for (const file of ['executor-pod-template-daemonset.yaml', 'executor-pod-template.yaml', 'executor-pod-template-no-native-sidecar.yaml', 'driver-pod-template.yaml']) {
      expect(refusals(podTemplate(file)), file).toEqual([]);
    }
    expect(refusals({ spec: { containers: [{ name: 'app' }] } })).toEqual([]);
  });

  it("refuses every way a tenant could reach another namespace's directory through the mount", () => {
    const hostile: Record<string, unknown> = {
      'the old layout without the namespace': executor((p) => {
        localMount(spark(p)).subPathExpr = '$(SPARK_APP_ID)/$(POD_NAME)';
      }),
      'a literal subPath naming another namespace': executor((p) => {
        const m = localMount(spark(p));
        delete m.subPathExpr;
        m.subPath = 'team-a/spark-0a1b/victim-exec-1';
      }),
      'POD_NAMESPACE set to a literal': executor((p) => {
        const e = (spark(p).env ?? []).find((x) => x.name === 'POD_NAMESPACE') as Env;
        delete e.valueFrom;
        e.value = 'team-a';
      }),
      'POD_NAMESPACE defined twice (the last one wins)': executor((p) => spark(p).env?.push({ name: 'POD_NAMESPACE', value: 'team-a' })),
      'POD_NAME from another field': executor((p) => {
        const e = (spark(p).env ?? []).find((x) => x.name === 'POD_NAME') as Env;
        e.valueFrom = { fieldRef: { fieldPath: 'metadata.uid' } };
      }),
      'the whole host directory': executor((p) => {
        const v = p.spec.volumes.find((x) => x.name === 'spark-local-dir-1');
        if (v?.hostPath) v.hostPath.path = '/var/lib/spark-shuffle-agent';
      }),
      'another directory below it': executor((p) => p.spec.volumes.push({ name: 'peek', hostPath: { path: '/var/lib/spark-shuffle-agent/local/team-a' } })),
      'a second container mounting it without the variables': executor((p) => p.spec.containers.push({ name: 'peek', volumeMounts: [{ name: 'spark-local-dir-1', mountPath: '/x', subPathExpr: '$(POD_NAMESPACE)/$(SPARK_APP_ID)/$(POD_NAME)' }] })),
      'an init container mounting it plainly': executor((p) => (p.spec.initContainers ??= []).push({ name: 'peek', volumeMounts: [{ name: 'spark-local-dir-1', mountPath: '/x' }] })),
      'an ephemeral container mounting it': executor((p) => {
        p.spec.ephemeralContainers = [{ name: 'debug', volumeMounts: [{ name: 'spark-local-dir-1', mountPath: '/x' }] }];
      }),
      hostNetwork: executor((p) => {
        p.spec.hostNetwork = true;
      }),
    };
    for (const [what, pod] of Object.entries(hostile)) expect(refusals(pod), what).not.toEqual([]);
  });

  it("follows the chart's hostDir and release namespace, and is rendered only in DaemonSet mode unless turned off", () => {
    const files = splitRendered(helm(['template', RELEASE, CHART, '--namespace', 'node-agents', '--set', 'hostDir=/srv/ssa']));
    const moved = parsePolicy(files.get('admission-policy.yaml'));
    expect(moved.binding.spec.matchResources.namespaceSelector.matchExpressions[0]?.values).toEqual(['node-agents']);
    // The executor template of that render passes; the old default path is now just another hostPath.
    expect(refusals(podTemplate('executor-pod-template-daemonset.yaml', files), moved.policy)).toEqual([]);
    const whole = structuredClone(podTemplate('executor-pod-template-daemonset.yaml', files)) as { spec: PodSpec };
    const v = whole.spec.volumes.find((x) => x.name === 'spark-local-dir-1');
    if (v?.hostPath) v.hostPath.path = '/srv/ssa';
    expect(refusals(whole, moved.policy)).not.toEqual([]);
    expect(refusals(whole), 'the default policy does not guard /srv/ssa').toEqual([]);

    expect(splitRendered(template('daemonset', { set: ['admissionPolicy.enabled=false'] })).has('admission-policy.yaml')).toBe(false);
    expect(splitRendered(template('sidecar')).has('admission-policy.yaml')).toBe(false);
  });
});
