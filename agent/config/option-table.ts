/**
 * One typed table of every setting: key, flag, env name, default, doc. Parsed once, validated,
 * printed at start with secrets masked; the README's config reference is generated from it.
 */

export class ConfigError extends Error {
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

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
  /** `1048576`, `64k`, `8MiB`, `1.5g`... (powers of 1024). */
  bytes: (raw: string): number => {
    const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?$/i.exec(raw.trim());
    if (!m) throw new Error(`expected a size such as 8MiB, got ${JSON.stringify(raw)}`);
    const power = ' kmgt'.indexOf((m[2] || ' ').toLowerCase());
    return Math.round(Number(m[1]) * 1024 ** power);
  },
};

/** Split `--flag value`, `--flag=value` and boolean `--flag` into a map; positional args apart. */
export function splitArgs(
  argv: readonly string[],
  specs: Readonly<Record<string, OptionSpec<unknown>>>,
): { values: Map<string, string>; positional: string[] } {
  const byFlag = new Map(Object.entries(specs).map(([key, s]) => [s.flag, { key, spec: s }]));
  const values = new Map<string, string>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = arg.slice(2, eq >= 0 ? eq : undefined);
    const found = byFlag.get(flag);
    if (!found) throw new ConfigError(flag, `unknown flag --${flag}`);
    if (eq >= 0) values.set(found.key, arg.slice(eq + 1));
    else if (found.spec.boolean) values.set(found.key, 'true');
    else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) throw new ConfigError(found.key, `--${flag} needs a value`);
      values.set(found.key, next);
      i++;
    }
  }
  return { values, positional };
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
