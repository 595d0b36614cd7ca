/**
 * Unknown-key check for Kubernetes manifests, driven by the type declarations that ship with
 * kubernetes-models. Its `validate()` checks types and required fields but accepts any extra key,
 * so `terminationGracePeriodSecond: 90` (a typo) would pass silently and the pod would get the
 * 30 s default. This walks an object alongside the interface it claims to be and reports every
 * key the interface does not declare.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, parse as parsePath } from 'node:path';

interface Field {
  /** Declaration file of the field's object type; undefined for scalars, maps and aliases. */
  ref?: string;
  array: boolean;
}

const require = createRequire(import.meta.url);
const MODELS_ROOT = dirname(require.resolve('kubernetes-models/package.json'));
const shapes = new Map<string, Map<string, Field> | null>();

/** Resolve an import specifier of a `.d.ts` file to the `.d.ts` file it names. */
function resolveDts(spec: string, fromFile: string): string {
  if (spec.startsWith('.')) return join(dirname(fromFile), `${spec}.d.ts`);
  // A bare specifier: look in every node_modules above the importing file.
  for (let dir = dirname(fromFile); ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', `${spec}.d.ts`);
    if (existsSync(candidate)) return candidate;
    if (dir === parsePath(dir).root) throw new Error(`cannot resolve ${spec} from ${fromFile}`);
  }
}

/** The declared fields of the first interface in a declaration file; null for type aliases. */
function shapeOf(file: string): Map<string, Field> | null {
  const cached = shapes.get(file);
  if (cached !== undefined) return cached;
  const text = readFileSync(file, 'utf8');
  const imports = new Map<string, string>();
  for (const m of text.matchAll(/^import \{ (\w+) \} from "([^"]+)";$/gm)) imports.set(m[1] as string, m[2] as string);
  const start = text.search(/^export interface \w+(?: extends [\w, ]+)? \{$/m);
  if (start < 0) {
    shapes.set(file, null);
    return null;
  }
  const fields = new Map<string, Field>();
  for (const line of text.slice(start).split('\n').slice(1)) {
    if (line === '}') break;
    // Properties sit at four spaces; nested map value types (`[key: string]: ...`) deeper.
    const m = /^ {4}"([^"]+)"\??: (.*)$/.exec(line);
    if (!m) continue;
    const type = m[2] as string;
    const ref = /^(Array<)?(IIoK8s\w+)>?;$/.exec(type);
    const spec = ref ? imports.get(ref[2] as string) : undefined;
    fields.set(m[1] as string, spec ? { ref: resolveDts(spec, file), array: ref?.[1] !== undefined } : { array: false });
  }
  shapes.set(file, fields);
  return fields;
}

function walk(value: unknown, file: string, path: string, out: string[]): void {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return;
  const shape = shapeOf(file);
  if (shape === null) return;
  for (const [key, child] of Object.entries(value)) {
    const field = shape.get(key);
    if (!field) {
      out.push(`${path}.${key}`);
      continue;
    }
    if (field.ref === undefined) continue;
    if (field.array && Array.isArray(child)) child.forEach((item, i) => walk(item, field.ref as string, `${path}.${key}[${i}]`, out));
    else walk(child, field.ref, `${path}.${key}`, out);
  }
}

/** True when kubernetes-models has a model for this apiVersion and kind. */
export function hasModel(apiVersion: string, kind: string): boolean {
  return existsSync(join(MODELS_ROOT, apiVersion, `${kind}.d.ts`));
}

/** Paths of every key the model of `apiVersion`/`kind` does not declare, e.g. `spec.containers[0].imagePullPolicyy`. */
export function unknownKeys(doc: { apiVersion: string; kind: string }): string[] {
  const out: string[] = [];
  walk(doc, join(MODELS_ROOT, doc.apiVersion, `${doc.kind}.d.ts`), doc.kind, out);
  return out;
}
