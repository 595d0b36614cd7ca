/**
 * One typed table of every setting: key, flag, env name, default, doc. Parsed once, validated,
 * printed at start with secrets masked; the README's config reference is generated from it.
 */
import { parseArgs } from 'node:util';
import { ConfigError } from '../util/errors.js';

export interface OptionSpec<T> {
  /** The flag without dashes, e.g. `local-dirs`; the env name is `SHUFFLE_AGENT_LOCAL_DIRS`. */
  flag: string;
  /** Default value as it would be written on the command line; undefined means none. */
  default?: string;
  doc: string;
  parse: (raw: string) => T;
  /** Masked when the resolved config is printed. */
  secret?: boolean;
  /** A flag that takes no value (`--flag` means true). */
  boolean?: boolean;
  /** A one-letter alias (`-o`). */
  short?: string;
  /** Shown in help as the value's name (`--store URL`); `VALUE` when unset. */
  metavar?: string;
  /** Short category used to group the README reference. */
  group: string;
}

/** Declare an option; keeps whether it has a default in its type (no default: value may be undefined). */
export function option<T, const D extends string | undefined = undefined>(
  spec: Omit<OptionSpec<T>, 'default'> & { default?: D },
): OptionSpec<T> & { default: D } {
  return spec as OptionSpec<T> & { default: D };
}

export function envName(flag: string): string {
  return `SHUFFLE_AGENT_${flag.toUpperCase().replace(/-/g, '_')}`;
}

// ---- value parsers, each throwing a message that the caller prefixes with the flag ----

export const parsers = {
  string: (raw: string): string => raw,
  list: (raw: string): string[] =>
    raw
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
  int:
    (min: number, max = Number.MAX_SAFE_INTEGER) =>
    (raw: string): number => {
      if (!/^-?\d+$/.test(raw.trim())) throw new Error(`expected an integer, got ${JSON.stringify(raw)}`);
      const n = Number(raw);
      if (n < min || n > max) throw new Error(`must be between ${min} and ${max}, got ${n}`);
      return n;
    },
  number:
    (min: number, max = Number.MAX_VALUE) =>
    (raw: string): number => {
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n)) throw new Error(`expected a number, got ${JSON.stringify(raw)}`);
      if (n < min || n > max) throw new Error(`must be between ${min} and ${max}, got ${n}`);
      return n;
    },
  bool: (raw: string): boolean => {
    const v = raw.trim().toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(v)) return true;
    if (['0', 'false', 'no', 'off'].includes(v)) return false;
    throw new Error(`expected true or false, got ${JSON.stringify(raw)}`);
  },
  oneOf:
    <T extends string>(values: readonly T[]) =>
    (raw: string): T => {
      if (!(values as readonly string[]).includes(raw)) throw new Error(`expected one of ${values.join(', ')}, got ${JSON.stringify(raw)}`);
      return raw as T;
    },
  /** `host:port`, `[v6]:port` or `:port`; port 0 picks a free port. */
  listen: (raw: string): { host: string; port: number } => {
    const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(raw.trim());
    if (!m) throw new Error(`expected HOST:PORT, got ${JSON.stringify(raw)}`);
    const port = Number(m[3]);
    if (port > 65535) throw new Error(`port ${port} is above 65535`);
    return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
  },
  /** `90s`, `30m`, `2h`, `7d` (a bare number is seconds), in milliseconds. */
  duration: (raw: string): number => {
    const m = /^(\d+(?:\.\d+)?)\s*(s|m|h|d)?$/i.exec(raw.trim());
    if (!m) throw new Error(`expected a duration such as 30m, 12h or 7d, got ${JSON.stringify(raw)}`);
    const unit = { s: 1, m: 60, h: 3600, d: 86_400 }[(m[2] ?? 's').toLowerCase() as 's' | 'm' | 'h' | 'd'];
    return Math.round(Number(m[1]) * unit * 1000);
  },
  /** A duration within `[min, max]`, both given as durations (`1m`, `30d`), in milliseconds. */
  durationIn: (min: string, max: string) => {
    return (raw: string): number => {
      const ms = parsers.duration(raw);
      if (ms < parsers.duration(min) || ms > parsers.duration(max)) throw new Error(`must be between ${min} and ${max}, got ${raw}`);
      return ms;
    };
  },
  /** `1048576`, `64k`, `8MiB`, `1.5g`... (powers of 1024). */
  bytes: (raw: string): number => {
    const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/i.exec(raw.trim());
    if (!m) throw new Error(`expected a size such as 8MiB, got ${JSON.stringify(raw)}`);
    const power = ' kmgt'.indexOf((m[2] || ' ').toLowerCase());
    return Math.round(Number(m[1]) * 1024 ** power);
  },
};

/**
 * Split `--flag value`, `--flag=value`, boolean `--flag` (or `--flag=false`) and short aliases into
 * a map; positional args apart. Tokenised by `node:util.parseArgs`; an unknown flag is refused
 * with the closest known one as a suggestion.
 */
export function splitArgs(
  argv: readonly string[],
  specs: Readonly<Record<string, OptionSpec<unknown>>>,
): { values: Map<string, string>; positional: string[] } {
  const byFlag = new Map(Object.entries(specs).map(([key, s]) => [s.flag, { key, spec: s }]));
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  for (const s of Object.values(specs)) options[s.flag] = { type: s.boolean ? 'boolean' : 'string', ...(s.short ? { short: s.short } : {}) };
  // Not strict: unknown flags and missing values come back as tokens, to be refused with our
  // own messages (a suggestion, the flag's name) instead of parseArgs' generic ones.
  const { tokens } = parseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true });
  const values = new Map<string, string>();
  const positional: string[] = [];
  for (const token of tokens) {
    if (token.kind === 'positional') {
      positional.push(token.value);
      continue;
    }
    if (token.kind === 'option-terminator') continue;
    const found = byFlag.get(token.name);
    if (!found) {
      const near = closest(token.name, [...byFlag.keys()]);
      throw new ConfigError(token.name, `unknown flag ${token.rawName}${near ? ` (did you mean --${near}?)` : ''}`);
    }
    if (found.spec.boolean) values.set(found.key, token.value ?? 'true');
    else {
      if (token.value === undefined) throw new ConfigError(found.key, `--${found.spec.flag} needs a value`);
      values.set(found.key, token.value);
    }
  }
  return { values, positional };
}

/** The candidate nearest to `word` by edit distance, when it is near enough to be a typo. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: { name: string; distance: number } | undefined;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (!best || d < best.distance) best = { name: c, distance: d };
  }
  const limit = Math.max(2, Math.floor(word.length / 3));
  return best && best.distance <= limit ? best.name : undefined;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length] as number;
}

export type ValuesOf<S extends Record<string, OptionSpec<unknown>>> = {
  [K in keyof S]: S[K] extends OptionSpec<infer T> ? (S[K]['default'] extends string ? T : T | undefined) : never;
};

/** Resolve flags over env over defaults, parse and validate every value. */
export function resolveOptions<S extends Record<string, OptionSpec<unknown>>>(
  specs: S,
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): { config: ValuesOf<S>; positional: string[]; sources: Record<string, 'flag' | 'env' | 'default'> } {
  const { values, positional } = splitArgs(argv, specs);
  const config: Record<string, unknown> = {};
  const sources: Record<string, 'flag' | 'env' | 'default'> = {};
  for (const [key, spec] of Object.entries(specs)) {
    const fromFlag = values.get(key);
    const fromEnv = env[envName(spec.flag)];
    const raw = fromFlag ?? (fromEnv !== undefined && fromEnv !== '' ? fromEnv : undefined) ?? spec.default;
    sources[key] = fromFlag !== undefined ? 'flag' : fromEnv !== undefined && fromEnv !== '' ? 'env' : 'default';
    if (raw === undefined) {
      config[key] = undefined;
      continue;
    }
    try {
      config[key] = spec.parse(raw);
    } catch (err) {
      const from = sources[key] === 'env' ? envName(spec.flag) : `--${spec.flag}`;
      throw new ConfigError(key, `${from}: ${(err as Error).message}`);
    }
  }
  return { config: config as ValuesOf<S>, positional, sources };
}

/** The resolved config for the start-up log, secrets masked. */
export function printable<S extends Record<string, OptionSpec<unknown>>>(specs: S, config: ValuesOf<S>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(specs)) {
    const v = (config as Record<string, unknown>)[key];
    out[key] = spec.secret && v !== undefined ? '***' : v;
  }
  return out;
}

/** Markdown table of the options, for the README. */
export function markdownReference(specs: Record<string, OptionSpec<unknown>>): string {
  const rows = Object.values(specs).map(
    (s) => `| \`--${s.flag}\` | \`${envName(s.flag)}\` | ${s.default === undefined ? '—' : `\`${s.default}\``} | ${s.doc} |`,
  );
  return ['| flag | environment | default | meaning |', '| --- | --- | --- | --- |', ...rows].join('\n');
}

/** Plain-text flag list for `--help`: one entry per flag, its env name and default, the doc wrapped. */
export function textReference(specs: Record<string, OptionSpec<unknown>>, options: { env: boolean; width?: number } = { env: true }): string {
  const width = options.width ?? 80;
  const lines: string[] = [];
  let group: string | undefined;
  const groups = new Set(Object.values(specs).map((s) => s.group));
  for (const s of Object.values(specs)) {
    if (groups.size > 1 && s.group !== group) {
      group = s.group;
      lines.push('', `${group}:`);
    }
    const name = `${s.short ? `-${s.short}, ` : ''}--${s.flag}${s.boolean ? '' : ` ${s.metavar ?? 'VALUE'}`}`;
    const facts = [options.env ? `env ${envName(s.flag)}` : undefined, s.default !== undefined && s.default !== '' ? `default ${s.default}` : undefined].filter((f) => f !== undefined);
    lines.push(`  ${name}${facts.length > 0 ? `  (${facts.join(', ')})` : ''}`);
    lines.push(...wrap(plain(s.doc), width - 6).map((l) => `      ${l}`));
  }
  return lines.join('\n').replace(/^\n/, '');
}

/** Markdown to plain text: code spans and emphasis lose their marks. */
function plain(doc: string): string {
  return doc.replace(/`([^`]*)`/g, '$1').replace(/\*\*([^*]*)\*\*/g, '$1');
}

function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line !== '' && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') out.push(line);
  return out;
}
