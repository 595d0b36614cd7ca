/**
 * The SparkApplication examples (examples/spark-operator/, one per deployment mode) against
 * spark-operator's own CRD schema, taken from the operator's Go module on the Go module proxy
 * (`go mod download`, cached by scripts/setup-test-env.sh), not copied by hand. A structural
 * schema prunes unknown fields silently; here an unknown field is an error, so a misspelled key
 * fails.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { renderExamples, ROOT, PLUGIN_JAR_PATH } from '../../scripts/render-chart.js';
import { PLUGIN_JAR_IN_IMAGE } from './plugin-jar.js';

/** Keep in step with scripts/setup-test-env.sh. */
const SPARK_OPERATOR_MODULE = 'github.com/kubeflow/spark-operator/v2@v2.4.0';
const DIR = join(ROOT, 'examples', 'spark-operator');

type Schema = Record<string, unknown>;

/** The module's directory in the Go module cache. */
function moduleDir(): string {
  const out = spawnSync('go', ['mod', 'download', '-json', SPARK_OPERATOR_MODULE], { encoding: 'utf8', timeout: 120_000 });
  const info = JSON.parse(out.stdout || '{}') as { Dir?: string; Error?: string };
  if (info.Dir === undefined) throw new Error(`go mod download ${SPARK_OPERATOR_MODULE}: ${info.Error ?? out.stderr} (run scripts/setup-test-env.sh)`);
  return info.Dir;
}

/**
 * A CRD's OpenAPI v3 schema as a strict JSON schema: objects with declared properties refuse
 * others (what the API server prunes), int-or-string fields take both.
 */
function strict(s: Schema): Schema {
  const out: Schema = {};
  for (const [k, v] of Object.entries(s)) {
    if (k.startsWith('x-kubernetes-')) continue;
    if (k === 'properties' && v !== null && typeof v === 'object') {
      out.properties = Object.fromEntries(Object.entries(v as Record<string, Schema>).map(([p, sub]) => [p, strict(sub)]));
    } else if ((k === 'items' || k === 'additionalProperties') && v !== null && typeof v === 'object') {
      out[k] = strict(v as Schema);
    } else if ((k === 'anyOf' || k === 'allOf' || k === 'oneOf') && Array.isArray(v)) {
      out[k] = (v as Schema[]).map(strict);
    } else out[k] = v;
  }
  if (s['x-kubernetes-int-or-string'] === true) {
    delete out.type;
    delete out.anyOf;
    out.type = ['integer', 'string'];
  }
  if (out.properties !== undefined && out.additionalProperties === undefined && s['x-kubernetes-preserve-unknown-fields'] !== true) {
    out.additionalProperties = false;
  }
  return out;
}

function sparkApplicationSchema(): Schema {
  const crd = parse(readFileSync(join(moduleDir(), 'config', 'crd', 'bases', 'sparkoperator.k8s.io_sparkapplications.yaml'), 'utf8')) as {
    spec: { versions: { name: string; served: boolean; schema: { openAPIV3Schema: Schema } }[] };
  };
  const v = crd.spec.versions.find((x) => x.name === 'v1beta2' && x.served);
  if (!v) throw new Error('the CRD serves no v1beta2');
  return strict(v.schema.openAPIV3Schema);
}

describe('SparkApplication examples (spark-operator)', () => {
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
  const validate = ajv.compile(sparkApplicationSchema());
  const errors = (e: ErrorObject[] | null | undefined): string[] => (e ?? []).map((x) => `${x.instancePath} ${x.message} ${JSON.stringify(x.params)}`);

  it('are the chart rendered (`npm run manifests`), one per mode', () => {
    const fresh = renderExamples();
    expect(readdirSync(DIR).filter((f) => f.endsWith('.yaml')).sort()).toEqual([...fresh.keys()].sort());
    for (const [name, text] of fresh) expect(readFileSync(join(DIR, name), 'utf8'), `${name} (run npm run manifests)`).toBe(text);
  });

  it('validate against the operator\'s CRD schema, with no unknown field', () => {
    for (const [name, text] of renderExamples()) {
      const app = parse(text) as unknown;
      expect(validate(app), `${name}: ${errors(validate.errors).join('\n')}`).toBe(true);
    }
  });

  it('the strict schema catches a misspelled field, which the API server would prune silently', () => {
    const app = parse(renderExamples().get('sparkapplication-sidecar.yaml') as string) as { spec: { executor: Record<string, unknown> } };
    app.spec.executor.templates = app.spec.executor.template;
    delete app.spec.executor.template;
    expect(validate(app)).toBe(false);
    expect(errors(validate.errors).join('\n')).toContain('templates');
  });

  it('load the plugin from the image\'s version-free jar path, with the templates that install it there', () => {
    expect(PLUGIN_JAR_PATH).toBe(PLUGIN_JAR_IN_IMAGE);
    for (const [name, text] of renderExamples()) {
      const app = parse(text) as { spec: { sparkConf: Record<string, string>; executor: { template: { spec: { initContainers: { command?: string[] }[] } } } } };
      expect(app.spec.sparkConf['spark.executor.extraClassPath'], name).toBe(PLUGIN_JAR_IN_IMAGE);
      expect(app.spec.sparkConf['spark.driver.extraClassPath'], name).toBe(PLUGIN_JAR_IN_IMAGE);
      expect(app.spec.executor.template.spec.initContainers[0]?.command?.[1], name).toBe(PLUGIN_JAR_IN_IMAGE);
      expect(text, name).not.toMatch(/plugin-\d/);
    }
  });
});
