/**
 * The Kubernetes manifests the Helm chart renders (`helm template`, both modes: what daemonset/
 * holds, see scripts/render-chart.ts): every document is validated against the kubernetes-models
 * schema (types, required fields) plus an unknown-key check (the schema accepts misspelled
 * fields), and the fields that decide whether outputs survive termination are checked against
 * the agent's own option table, so a renamed flag or a moved port fails here.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, posix, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import type { IContainer } from 'kubernetes-models/v1/Container';
import type { IPod } from 'kubernetes-models/v1/Pod';
import type { IPodSpec } from 'kubernetes-models/v1/PodSpec';
import type { IProbe } from 'kubernetes-models/v1/Probe';
import type { IDaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
import type { IConfigMap } from 'kubernetes-models/v1/ConfigMap';
import type { IServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import type { IService } from 'kubernetes-models/v1/Service';
import { RUN_OPTIONS } from '../../agent/config/run-options.js';
import { envName, type OptionSpec } from '../../agent/config/option-table.js';
import { hasModel, unknownKeys } from './model-keys.js';
import { PLUGIN_DIR_IN_SPARK, PLUGIN_JAR_IN_IMAGE } from './plugin-jar.js';
import { AGENT_UID, SPARK_GID } from './agent-uid.js';
import { renderManifests } from '../../scripts/render-chart.js';

const ROOT = resolve(import.meta.dirname, '../..');
/** Seconds the pod's grace period must leave beyond the agent's drain for process exit and logs. */
const MARGIN_S = 5;
const SPARK_CONTAINER = 'spark-kubernetes-executor';
const LOCAL_DIR_VOLUME = 'spark-local-dir-1';
const AGENT_IMAGE = 'ghcr.io/spark-shuffle-agent/spark-shuffle-agent';

interface Doc {
  file: string;
  apiVersion: string;
  kind: string;
  metadata?: { name?: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

function loadDocs(): Doc[] {
  const docs: Doc[] = [];
  for (const [file, text] of [...renderManifests()].sort(([a], [b]) => a.localeCompare(b))) {
    for (const parsed of parseAllDocuments(text)) {
      if (parsed.errors.length > 0) throw new Error(`${file}: ${parsed.errors.map((e) => e.message).join('; ')}`);
      const value = parsed.toJS() as Doc | null;
      if (value === null) continue;
      docs.push({ ...value, file });
    }
  }
  return docs;
}

const DOCS = loadDocs();

function only<T>(file: string, kind: string): T {
  const found = DOCS.filter((d) => d.file === file && d.kind === kind);
  expect(found, `${file} holds one ${kind}`).toHaveLength(1);
  return found[0] as unknown as T;
}

// ---- the agent's command line, checked against its option table ----

const OPTIONS = RUN_OPTIONS as unknown as Record<string, OptionSpec<unknown>>;
const BY_FLAG = new Map(Object.values(OPTIONS).map((s) => [s.flag, s]));
const BY_ENV = new Map(Object.values(OPTIONS).map((s) => [envName(s.flag), s]));

/** `run --a=1 --b 2` -> {a: '1', b: '2'}. Whether the agent knows them is checked by `agentInputProblems`. */
function agentFlags(args: readonly string[]): Map<string, string> {
  expect(args[0], 'first argument is the subcommand').toBe('run');
  const flags = new Map<string, string>();
  for (let i = 1; i < args.length; i++) {
    const arg = args[i] as string;
    expect(arg.startsWith('--'), `argument ${arg} is a flag`).toBe(true);
    const eq = arg.indexOf('=');
    const flag = arg.slice(2, eq >= 0 ? eq : undefined);
    const value = eq >= 0 ? arg.slice(eq + 1) : BY_FLAG.get(flag)?.boolean ? 'true' : (args[++i] as string);
    flags.set(flag, value);
  }
  return flags;
}

/** Flags, SHUFFLE_AGENT_* variables and values of an agent container that `shuffle-agent run` would refuse. */
function agentInputProblems(c: IContainer): string[] {
  const problems: string[] = [];
  const check = (what: string, spec: OptionSpec<unknown> | undefined, value: string): void => {
    if (!spec) problems.push(`${what}: not an option of shuffle-agent run`);
    else if (!value.startsWith('fieldRef:')) {
      try {
        spec.parse(value);
      } catch (err) {
        problems.push(`${what}=${value}: ${(err as Error).message}`);
      }
    }
  };
  for (const [flag, value] of agentFlags(c.args ?? [])) check(`--${flag}`, BY_FLAG.get(flag), value);
  for (const [name, value] of containerEnv(c)) if (name.startsWith('SHUFFLE_AGENT_')) check(name, BY_ENV.get(name), value);
  return problems;
}

/** A flag's effective raw value: the argument, else a SHUFFLE_AGENT_* variable, else the default. */
function effective(flag: string, flags: Map<string, string>, env: Map<string, string>): string {
  const value = flags.get(flag) ?? env.get(envName(flag)) ?? BY_FLAG.get(flag)?.default;
  expect(value, `--${flag} has a value`).toBeDefined();
  return value as string;
}

function listenPort(raw: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d+)$/.exec(raw);
  expect(m, `listen address ${raw}`).not.toBeNull();
  return { host: m?.[1] ?? (m?.[2] || '0.0.0.0'), port: Number(m?.[3]) };
}

/** Environment of a container: literal values, fieldRef paths as `fieldRef:<path>`, and envFrom ConfigMaps. */
function containerEnv(c: IContainer): Map<string, string> {
  const env = new Map<string, string>();
  for (const from of c.envFrom ?? []) {
    const name = from.configMapRef?.name;
    expect(name, 'envFrom names a ConfigMap').toBeDefined();
    const cm = DOCS.find((d) => d.kind === 'ConfigMap' && d.metadata?.name === name) as unknown as IConfigMap | undefined;
    expect(cm, `ConfigMap ${name} is rendered`).toBeDefined();
    for (const [k, v] of Object.entries(cm?.data ?? {})) env.set(k, v);
  }
  for (const e of c.env ?? []) {
    const fieldPath = e.valueFrom?.fieldRef?.fieldPath;
    env.set(e.name, fieldPath !== undefined ? `fieldRef:${fieldPath}` : (e.value ?? ''));
  }
  return env;
}

function portNumber(c: IContainer, port: number | string): number {
  if (typeof port === 'number') return port;
  const found = (c.ports ?? []).find((p) => p.name === port);
  expect(found, `port ${port} is declared by container ${c.name}`).toBeDefined();
  return found?.containerPort as number;
}

interface AgentFacts {
  container: IContainer;
  flags: Map<string, string>;
  env: Map<string, string>;
  httpPort: number;
  grpcPort: number;
  drainTimeoutS: number;
}

/** Everything that makes an agent container reachable, probed correctly, hardened and writable where it must be. */
function checkAgent(pod: IPodSpec, c: IContainer): AgentFacts {
  expect(c.image?.startsWith(`${AGENT_IMAGE}:`), `${c.name} runs the agent image`).toBe(true);
  const flags = agentFlags(c.args ?? []);
  expect(c.command, 'the image entrypoint (the built CLI) is kept').toBeUndefined();
  const env = containerEnv(c);
  const http = listenPort(effective('http-listen', flags, env));
  const grpc = listenPort(effective('grpc-listen', flags, env));
  // Probes and peers connect to the pod IP, never to the container's loopback.
  for (const l of [http, grpc]) expect(['0.0.0.0', '::'], 'listens on all interfaces').toContain(l.host);
  const ports = new Map((c.ports ?? []).map((p) => [p.containerPort, p]));
  expect(ports.get(http.port)?.name, 'the HTTP port is declared').toBe('agent-http');
  expect(ports.get(grpc.port)?.name, 'the gRPC port is declared').toBe('agent-grpc');

  const probe = (p: IProbe | undefined, what: string, paths: string[]): void => {
    expect(p?.httpGet, `${what} probe is an httpGet`).toBeDefined();
    expect(paths, `${what} probe path`).toContain(p?.httpGet?.path);
    expect(portNumber(c, p?.httpGet?.port as number | string), `${what} probe port`).toBe(http.port);
    expect(p?.httpGet?.scheme ?? 'HTTP').toBe('HTTP');
  };
  probe(c.startupProbe, 'startup', ['/readyz', '/healthz']);
  probe(c.readinessProbe, 'readiness', ['/readyz']);
  probe(c.livenessProbe, 'liveness', ['/healthz']);
  expect(c.livenessProbe?.httpGet?.path, 'liveness must not follow readiness (draining is not dead)').toBe('/healthz');

  const sc = c.securityContext;
  expect(sc?.runAsNonRoot).toBe(true);
  // Its own uid, not Spark's (a tenant's Spark process must not act as the agent); Spark's group
  // on the pod lets it read group-only directories.
  expect(sc?.runAsUser).toBe(AGENT_UID);
  expect(sc?.runAsGroup).toBe(AGENT_UID);
  expect(pod.securityContext?.supplementalGroups, 'Spark\'s group').toContain(SPARK_GID);
  expect(sc?.readOnlyRootFilesystem).toBe(true);
  expect(sc?.allowPrivilegeEscalation).toBe(false);
  expect(sc?.privileged ?? false).toBe(false);
  expect(sc?.capabilities?.drop).toContain('ALL');
  expect(sc?.capabilities?.add ?? []).toEqual([]);
  expect(sc?.seccompProfile?.type).toBe('RuntimeDefault');

  expect(c.resources?.requests?.cpu, 'cpu request').toBeDefined();
  expect(c.resources?.requests?.memory, 'memory request').toBeDefined();
  expect(c.resources?.limits?.memory, 'memory limit').toBeDefined();

  // Read-only root: TMPDIR must be a mounted emptyDir.
  const tmp = env.get('TMPDIR');
  expect(tmp, 'TMPDIR is set').toBeDefined();
  const tmpMount = (c.volumeMounts ?? []).find((m) => m.mountPath === tmp);
  expect(tmpMount, 'TMPDIR is a mount').toBeDefined();
  expect(tmpMount?.readOnly ?? false).toBe(false);
  expect(pod.volumes?.find((v) => v.name === tmpMount?.name)?.emptyDir, 'TMPDIR is an emptyDir').toBeDefined();

  const drain = Number(effective('drain-timeout', flags, env));
  expect(Number.isFinite(drain) && drain > 0, 'drain timeout in seconds').toBe(true);
  return { container: c, flags, env, httpPort: http.port, grpcPort: grpc.port, drainTimeoutS: drain };
}

function mountOf(c: IContainer, volume: string): { mountPath: string; readOnly?: boolean; subPathExpr?: string } {
  const m = (c.volumeMounts ?? []).filter((v) => v.name === volume);
  expect(m, `${c.name} mounts ${volume} once`).toHaveLength(1);
  return m[0] as { mountPath: string; readOnly?: boolean; subPathExpr?: string };
}

function sparkContainer(spec: IPodSpec): IContainer {
  // Spark takes the first container of the template (unless podTemplateContainerName says otherwise).
  const first = spec.containers[0] as IContainer;
  expect(first.name).toBe(SPARK_CONTAINER);
  expect(first.image, 'Spark sets the image').toBeUndefined();
  return first;
}

function checkSparkLocalDir(spark: IContainer): string {
  const m = mountOf(spark, LOCAL_DIR_VOLUME);
  // Documented as spark.local.dir; Spark refuses the template if they differ.
  expect(m.mountPath).toBe('/var/data/spark-local-dir-1');
  return m.mountPath;
}

function checkAppIdFromLabels(env: Map<string, string>): void {
  expect(env.get('SHUFFLE_AGENT_APP_ID')).toBe("fieldRef:metadata.labels['spark-app-selector']");
  expect(env.get('SPARK_EXECUTOR_ID')).toBe("fieldRef:metadata.labels['spark-exec-id']");
}

function packageBin(): string {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
  return pkg.bin['shuffle-agent'] as string;
}

describe('daemonset/ manifests', () => {
  it('parse, and every Kubernetes object validates against kubernetes-models with no unknown key', async () => {
    expect(DOCS.length).toBeGreaterThanOrEqual(9);
    for (const doc of DOCS) {
      const { file, ...body } = doc;
      if (doc.kind === 'PodMonitor') continue;
      expect(hasModel(doc.apiVersion, doc.kind), `${file}: ${doc.apiVersion} ${doc.kind} has a model`).toBe(true);
      const mod = (await import(`kubernetes-models/${doc.apiVersion}/${doc.kind}`)) as Record<string, new (data: unknown) => { validate(): void }>;
      const Model = mod[doc.kind] as new (data: unknown) => { validate(): void };
      expect(() => new Model(body).validate(), `${file} ${doc.kind}`).not.toThrow();
      expect(unknownKeys(body), `${file}: keys the ${doc.kind} schema does not have`).toEqual([]);
    }
  });

  it('the agent accepts every flag, SHUFFLE_AGENT_* variable and value the manifests give it', () => {
    const agents = DOCS.flatMap((d) => {
      const spec = (d.kind === 'Pod' ? (d as unknown as IPod).spec : d.kind === 'DaemonSet' ? (d as unknown as IDaemonSet).spec?.template.spec : undefined) as IPodSpec | undefined;
      const all = [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])];
      // The agent containers run the image's entrypoint (the CLI); prepare-local-dir runs a shell.
      return all.filter((c) => c.image?.startsWith(`${AGENT_IMAGE}:`) && c.command === undefined).map((c) => ({ where: `${d.file} ${c.name}`, c }));
    });
    expect(agents.map((a) => a.where)).toEqual([
      'daemonset.yaml shuffle-agent',
      'executor-pod-template-no-native-sidecar.yaml shuffle-agent',
      'executor-pod-template.yaml shuffle-agent',
    ]);
    for (const { where, c } of agents) expect(agentInputProblems(c), where).toEqual([]);
  });

  it('the unknown-key check catches a misspelled safety field', () => {
    const { file: _file, ...pod } = structuredClone(only<Doc>('executor-pod-template.yaml', 'Pod'));
    const spec = pod.spec as Record<string, unknown>;
    spec.terminationGracePeriodSecond = spec.terminationGracePeriodSeconds;
    delete spec.terminationGracePeriodSeconds;
    expect(unknownKeys(pod)).toEqual(['Pod.spec.terminationGracePeriodSecond']);
  });

  it('executor-pod-template.yaml: the agent is a native sidecar sharing spark-local-dir-1, and the grace period covers its drain', () => {
    const pod = only<IPod>('executor-pod-template.yaml', 'Pod');
    const spec = pod.spec as IPodSpec;
    const spark = sparkContainer(spec);
    const sparkDir = checkSparkLocalDir(spark);
    expect(spec.containers.map((c) => c.name), 'the agent is not a regular container').toEqual([SPARK_CONTAINER]);
    const sidecar = (spec.initContainers ?? []).find((c) => c.name === 'shuffle-agent') as IContainer;
    expect(sidecar.restartPolicy, 'native sidecar').toBe('Always');
    const agent = checkAgent(spec, sidecar);
    expect(spec.volumes?.find((v) => v.name === LOCAL_DIR_VOLUME)?.emptyDir).toBeDefined();
    const m = mountOf(sidecar, LOCAL_DIR_VOLUME);
    expect(m.readOnly).toBe(true);
    expect(agent.flags.get('local-dirs')).toBe(m.mountPath);
    expect(m.mountPath).toBe(sparkDir);
    expect(agent.flags.get('local-dirs-layout') ?? '').toBe('');
    checkAppIdFromLabels(agent.env);
    expect(agent.env.get('SHUFFLE_AGENT_STORE')).toMatch(/^s3:\/\//);
    // The sidecar is stopped after the executor exits; its drain must fit in what is left.
    expect(spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(agent.drainTimeoutS + MARGIN_S);
  });

  it('executor-pod-template-no-native-sidecar.yaml: preStop hooks wait for safe exit on the agent port, within the grace period', () => {
    const pod = only<IPod>('executor-pod-template-no-native-sidecar.yaml', 'Pod');
    const spec = pod.spec as IPodSpec;
    const spark = sparkContainer(spec);
    checkSparkLocalDir(spark);
    // No sidecar: the only init container is the plain one that installs the Spark plugin.
    expect((spec.initContainers ?? []).map((c) => [c.name, c.restartPolicy]), 'no sidecar init container: this variant is for clusters without sidecars').toEqual([['install-spark-plugin', undefined]]);
    const agentContainer = spec.containers.find((c) => c.name === 'shuffle-agent') as IContainer;
    expect(agentContainer.restartPolicy).toBeUndefined();
    const agent = checkAgent(spec, agentContainer);
    checkAppIdFromLabels(agent.env);
    expect(mountOf(agentContainer, LOCAL_DIR_VOLUME).mountPath).toBe(agent.flags.get('local-dirs'));

    // Spark's container: httpGet long-poll on the agent (by number: named ports resolve in the Spark container).
    const hook = spark.lifecycle?.preStop?.httpGet;
    expect(hook?.port).toBe(agent.httpPort);
    const url = new URL(hook?.path ?? '', 'http://pod');
    expect(url.pathname).toBe('/v1/status');
    expect(url.searchParams.get('wait')).toBe('safe_to_exit');
    // The kubelet sends it to the pod IP, where a drain is refused (loopback only): it only waits,
    // and the agent's own hook (over loopback) starts the drain.
    expect(url.searchParams.get('drain')).toBeNull();
    const sparkWait = Number(url.searchParams.get('timeout'));
    expect(sparkWait).toBeGreaterThan(0);

    // The agent's own hook: the CLI's wait-safe-exit against its own HTTP port.
    const cmd = agentContainer.lifecycle?.preStop?.exec?.command ?? [];
    expect(cmd.slice(0, 3)).toEqual(['node', posix.join('/app', packageBin()), 'wait-safe-exit']);
    const httpArg = cmd[cmd.indexOf('--http') + 1] as string;
    expect(new URL(httpArg).port).toBe(String(agent.httpPort));
    expect(new URL(httpArg).hostname, 'drains over loopback, the only place the agent takes them from').toBe('127.0.0.1');
    expect(cmd.includes('--drain=false')).toBe(false);
    const agentWait = Number(cmd[cmd.indexOf('--timeout') + 1]);
    expect(agentWait).toBeGreaterThan(0);

    expect(spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(Math.max(sparkWait, agentWait) + agent.drainTimeoutS + MARGIN_S);
  });

  it('DaemonSet mode: node-critical agent with NODE_NAME and the hostPath the executor template mounts per app and executor', () => {
    const ds = only<IDaemonSet>('daemonset.yaml', 'DaemonSet');
    const spec = ds.spec?.template.spec as IPodSpec;
    expect(spec.priorityClassName).toBe('system-node-critical');
    expect(spec.automountServiceAccountToken).toBe(false);
    expect(spec.hostNetwork ?? false).toBe(false);
    const sa = only<IServiceAccount>('serviceaccount.yaml', 'ServiceAccount');
    expect(spec.serviceAccountName).toBe(sa.metadata?.name);
    expect(sa.automountServiceAccountToken).toBe(false);
    // The agent does not call the Kubernetes API: no RBAC at all.
    expect(DOCS.filter((d) => /Role|RoleBinding/.test(d.kind))).toEqual([]);

    expect(spec.containers).toHaveLength(1);
    const c = spec.containers[0] as IContainer;
    const agent = checkAgent(spec, c);
    expect(agent.env.get('NODE_NAME')).toBe('fieldRef:spec.nodeName');
    // The namespace in the layout is what an app id is bound to (issue 17): users set spark.app.id.
    expect(agent.flags.get('local-dirs-layout')).toBe('{namespace}/{appId}/{executorId}');
    // Per-app tokens are on, from a Secret that must exist (no silent open mode).
    const keyFile = agent.flags.get('grpc-app-key-file') as string;
    expect(keyFile, '--grpc-app-key-file is set').toBeDefined();
    expect(agent.flags.has('grpc-serve-unseen-apps')).toBe(false);
    const keyMount = (c.volumeMounts ?? []).find((m) => keyFile.startsWith(`${m.mountPath}/`));
    expect(keyMount?.readOnly).toBe(true);
    const keySecret = spec.volumes?.find((v) => v.name === keyMount?.name)?.secret;
    expect(keySecret?.secretName).toBe('spark-shuffle-agent-app-key');
    expect(keySecret?.optional).toBe(false);
    expect(spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(agent.drainTimeoutS + MARGIN_S);
    expect(ds.spec?.selector.matchLabels).toEqual({ 'app.kubernetes.io/name': 'spark-shuffle-agent', 'app.kubernetes.io/instance': 'spark-shuffle-agent' });

    // --local-dirs is inside a read-only hostPath mount; compute where it is on the host.
    const localDir = agent.flags.get('local-dirs') as string;
    const mount = (c.volumeMounts ?? []).find((m) => localDir === m.mountPath || localDir.startsWith(`${m.mountPath}/`));
    expect(mount?.readOnly).toBe(true);
    const hostPath = spec.volumes?.find((v) => v.name === mount?.name)?.hostPath;
    expect(hostPath?.type).toBe('DirectoryOrCreate');
    const hostLocalDir = posix.join(hostPath?.path as string, posix.relative(mount?.mountPath as string, localDir));

    // The init container makes that directory 1777 (the kubelet creates executors' subPath dirs as root with the root's mode).
    const init = (spec.initContainers ?? []) as IContainer[];
    expect(init.map((i) => i.name)).toEqual(['prepare-local-dir']);
    const prep = init[0] as IContainer;
    expect(prep.restartPolicy).toBeUndefined();
    const prepMount = mountOf(prep, mount?.name as string);
    const script = (prep.args ?? []).join('\n');
    expect(script).toContain(`d=${posix.join(prepMount.mountPath, posix.relative(hostPath?.path as string, hostLocalDir))}`);
    expect(script).toMatch(/chmod 1777 "\$d"\s*$/);
    const psc = prep.securityContext;
    // Root only to change a root-owned directory it owns: no capability, no escalation, read-only root.
    expect(psc?.capabilities?.drop).toContain('ALL');
    expect(psc?.capabilities?.add ?? []).toEqual([]);
    expect(psc?.allowPrivilegeEscalation).toBe(false);
    expect(psc?.readOnlyRootFilesystem).toBe(true);
    expect(psc?.seccompProfile?.type).toBe('RuntimeDefault');

    const tolerated = new Set((spec.tolerations ?? []).map((t) => t.key));
    for (const key of ['cloud.google.com/gke-spot', 'cloud.google.com/gke-preemptible', 'kubernetes.azure.com/scalesetpriority', 'karpenter.sh/capacity-type', 'aws-node-termination-handler/spot-itn']) {
      expect(tolerated, `tolerates ${key}`).toContain(key);
    }
    for (const t of spec.tolerations ?? []) expect(t.operator, `${t.key} tolerated whatever its value and effect`).toBe('Exists');

    // The executor template for this mode mounts exactly that directory, per app and pod.
    const exec = only<IPod>('executor-pod-template-daemonset.yaml', 'Pod').spec as IPodSpec;
    const spark = sparkContainer(exec);
    expect(exec.containers).toHaveLength(1);
    expect((exec.initContainers ?? []).map((c) => c.name)).toEqual(['install-spark-plugin']);
    const sparkMount = mountOf(spark, LOCAL_DIR_VOLUME);
    expect(sparkMount.mountPath).toBe(checkSparkLocalDir(spark));
    expect(sparkMount.subPathExpr).toBe('$(POD_NAMESPACE)/$(SPARK_APP_ID)/$(POD_NAME)');
    const sparkEnv = containerEnv(spark);
    expect(sparkEnv.get('POD_NAMESPACE')).toBe('fieldRef:metadata.namespace');
    expect(sparkEnv.get('SPARK_APP_ID')).toBe("fieldRef:metadata.labels['spark-app-selector']");
    expect(sparkEnv.get('POD_NAME')).toBe('fieldRef:metadata.name');
    for (const v of sparkMount.subPathExpr?.match(/\$\((\w+)\)/g) ?? []) expect(sparkEnv.has(v.slice(2, -1)), `${v} is defined`).toBe(true);
    const execHostPath = exec.volumes?.find((v) => v.name === LOCAL_DIR_VOLUME)?.hostPath;
    expect(execHostPath?.path).toBe(hostLocalDir);
    // Directory, not DirectoryOrCreate: never write where no agent prepared (and watches).
    expect(execHostPath?.type).toBe('Directory');
  });

  it('NetworkPolicy: gRPC only from Spark pods, HTTP only from Prometheus and executors (token requests), nothing open to all', () => {
    const ds = only<IDaemonSet>('daemonset.yaml', 'DaemonSet');
    const c = ds.spec?.template.spec?.containers[0] as IContainer;
    const agent = checkAgent(ds.spec?.template.spec as IPodSpec, c);
    const np = only<INetworkPolicy>('networkpolicy.yaml', 'NetworkPolicy');
    const podLabels = ds.spec?.template.metadata?.labels ?? {};
    for (const [k, v] of Object.entries(np.spec?.podSelector.matchLabels ?? {})) expect(podLabels[k], `selects the agent pods by ${k}`).toBe(v);
    expect(np.spec?.policyTypes).toContain('Ingress');
    const rules = np.spec?.ingress ?? [];
    expect(rules.length).toBe(2);
    const byPort = new Map<number, (typeof rules)[number]>();
    for (const r of rules) {
      expect(r.from?.length ?? 0, 'every rule names its sources').toBeGreaterThan(0);
      expect(r.ports?.length, 'every rule names one port').toBe(1);
      byPort.set(r.ports?.[0]?.port as number, r);
    }
    expect([...byPort.keys()].sort()).toEqual([agent.grpcPort, agent.httpPort].sort());
    for (const peer of byPort.get(agent.grpcPort)?.from ?? []) {
      expect(peer.ipBlock).toBeUndefined();
      expect(peer.podSelector?.matchExpressions).toEqual([{ key: 'spark-role', operator: 'In', values: ['driver', 'executor'] }]);
    }
    const httpPeers = byPort.get(agent.httpPort)?.from ?? [];
    expect(httpPeers).toHaveLength(2);
    for (const peer of httpPeers) {
      expect(peer.ipBlock).toBeUndefined();
      if (peer.podSelector?.matchLabels?.['app.kubernetes.io/name'] === 'prometheus') {
        expect(peer.namespaceSelector?.matchLabels, 'Prometheus from its own namespace only').toBeDefined();
      } else {
        expect(peer.podSelector?.matchExpressions).toEqual([{ key: 'spark-role', operator: 'In', values: ['executor'] }]);
      }
    }
  });

  it('Service: executors reach the agent of their own node (internalTrafficPolicy Local) on its HTTP and gRPC ports', () => {
    const ds = only<IDaemonSet>('daemonset.yaml', 'DaemonSet');
    const c = ds.spec?.template.spec?.containers[0] as IContainer;
    const agent = checkAgent(ds.spec?.template.spec as IPodSpec, c);
    const svc = only<IService>('service.yaml', 'Service');
    expect(svc.spec?.internalTrafficPolicy).toBe('Local');
    const podLabels = ds.spec?.template.metadata?.labels ?? {};
    for (const [k, v] of Object.entries(svc.spec?.selector ?? {})) expect(podLabels[k], `selects the agent pods by ${k}`).toBe(v);
    const ports = (svc.spec?.ports ?? []).map((p) => portNumber(c, p.targetPort as string | number)).sort();
    expect(ports).toEqual([agent.grpcPort, agent.httpPort].sort());
    // The executor template names this Service for its agent.
    const exec = only<IPod>('executor-pod-template-daemonset.yaml', 'Pod').spec as IPodSpec;
    const url = new URL(containerEnv(sparkContainer(exec)).get('SPARK_SHUFFLE_AGENT_URL') as string);
    expect(url.hostname).toBe(`${svc.metadata?.name}.spark-shuffle-agent.svc`);
    expect(Number(url.port)).toBe(svc.spec?.ports?.find((p) => p.name === 'agent-http')?.port);
  });

  it('PodMonitor scrapes /metrics on the agent HTTP port of the DaemonSet pods', () => {
    const ds = only<IDaemonSet>('daemonset.yaml', 'DaemonSet');
    const c = ds.spec?.template.spec?.containers[0] as IContainer;
    const agent = checkAgent(ds.spec?.template.spec as IPodSpec, c);
    const pm = only<Doc>('podmonitor.yaml', 'PodMonitor');
    expect(pm.apiVersion).toBe('monitoring.coreos.com/v1');
    const spec = pm.spec as { selector: { matchLabels: Record<string, string> }; podMetricsEndpoints: { port: string; path: string }[] };
    expect(Object.keys(pm.spec as object).sort()).toEqual(['podMetricsEndpoints', 'selector']);
    const podLabels = ds.spec?.template.metadata?.labels ?? {};
    for (const [k, v] of Object.entries(spec.selector.matchLabels)) expect(podLabels[k]).toBe(v);
    expect(spec.podMetricsEndpoints).toHaveLength(1);
    const ep = spec.podMetricsEndpoints[0] as { port: string; path: string };
    expect(Object.keys(ep).every((k) => ['port', 'path', 'interval', 'scrapeTimeout'].includes(k)), 'known endpoint keys').toBe(true);
    expect(portNumber(c, ep.port)).toBe(agent.httpPort);
    expect(ep.path).toBe('/metrics');
  });

  it('every executor template installs the Spark plugin from the agent image onto the executor\'s class path before Spark starts', () => {
    for (const file of ['executor-pod-template.yaml', 'executor-pod-template-no-native-sidecar.yaml', 'executor-pod-template-daemonset.yaml']) {
      const spec = only<IPod>(file, 'Pod').spec as IPodSpec;
      const init = (spec.initContainers ?? []) as IContainer[];
      // First: Spark's JVM (and a native sidecar after it) start only once the jar is in place.
      const install = init[0] as IContainer;
      expect(install.name, file).toBe('install-spark-plugin');
      expect(install.image, file).toMatch(new RegExp(`^${AGENT_IMAGE}:`));
      expect(install.restartPolicy, `${file}: a plain init container, run to completion`).toBeUndefined();
      const dest = mountOf(install, 'spark-shuffle-agent-plugin').mountPath;
      expect(install.command, file).toEqual(['cp', PLUGIN_JAR_IN_IMAGE, `${dest}/`]);
      expect(install.securityContext?.readOnlyRootFilesystem, file).toBe(true);
      const m = mountOf(sparkContainer(spec), 'spark-shuffle-agent-plugin');
      expect(m, file).toEqual({ name: 'spark-shuffle-agent-plugin', mountPath: PLUGIN_DIR_IN_SPARK, readOnly: true });
      // The documented spark.executor.extraClassPath names the jar in that mount.
      expect(renderManifests().get(file), file).toContain(`spark.executor.extraClassPath=${PLUGIN_DIR_IN_SPARK}/spark-shuffle-agent-plugin.jar`);
    }
    const driver = only<IPod>('driver-pod-template.yaml', 'Pod').spec as IPodSpec;
    expect((driver.containers[0] as IContainer).name).toBe('spark-kubernetes-driver');
    expect(mountOf(driver.containers[0] as IContainer, 'spark-shuffle-agent-plugin').mountPath).toBe(PLUGIN_DIR_IN_SPARK);
    expect((driver.initContainers?.[0] as IContainer).command).toEqual(['cp', PLUGIN_JAR_IN_IMAGE, '/plugin/']);
  });

  it('daemonset/ is the chart rendered (`npm run manifests`), file for file', () => {
    const dir = join(ROOT, 'daemonset');
    const fresh = renderManifests();
    const onDisk = new Map(readdirSync(dir).filter((f) => f.endsWith('.yaml')).map((f) => [f, readFileSync(join(dir, f), 'utf8')]));
    expect([...onDisk.keys()].sort()).toEqual([...fresh.keys()].sort());
    for (const [name, text] of fresh) expect(onDisk.get(name), `daemonset/${name} (run npm run manifests)`).toBe(text);
    expect(DOCS.filter((d) => d.kind === 'Pod').map((d) => d.file).sort()).toEqual([
      'driver-pod-template.yaml',
      'executor-pod-template-daemonset.yaml',
      'executor-pod-template-no-native-sidecar.yaml',
      'executor-pod-template.yaml',
    ]);
  });
});
