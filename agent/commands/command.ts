/**
 * What every `shuffle-agent` subcommand is: its flags (a typed option table), its usage line,
 * its help text and the exit codes it can return. `runCommand` does what they all share: `-h`
 * and `--help`, flag parsing with the option table, and turning errors into one line and an exit
 * code (never a stack trace for a user's mistake).
 */
import { resolveOptions, textReference, type OptionSpec, type ValuesOf } from '../config/option-table.js';
import { StoreError } from '../store/block-store.js';
import { ConfigError, describeError } from '../util/errors.js';

/**
 * The exit codes of every subcommand, one meaning each (the README's "Exit codes" lists them).
 * A command returns only those in its `exitCodes`.
 */
export const EXIT = {
  /** Done; for `verify`, every output is intact. */
  ok: 0,
  /** An unexpected failure (a bug): the message and stack trace go to stderr. */
  failure: 1,
  /** Bad usage: an unknown flag, a bad or missing value, or a file a flag names that cannot be read. */
  usage: 2,
  /** `run`: the drain after SIGTERM ended (deadline or second signal) with committed outputs not stored. */
  notStored: 3,
  /** The store cannot be used: it does not exist, refuses the credentials, or cannot be reached. */
  store: 4,
  /** `verify`: the store holds damaged or missing outputs, or none for the app. */
  problems: 5,
  /** `wait-safe-exit`: the agent did not become safe to exit before the timeout. */
  timeout: 6,
  /** `fetch`: the agent refused or failed the request (its gRPC status is printed). */
  remote: 7,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** What each exit code means, for help texts and the README. */
export const EXIT_MEANINGS: Record<ExitCode, string> = {
  0: 'done (verify: every output intact)',
  1: 'unexpected failure (a bug; the stack trace is printed)',
  2: 'bad usage: unknown flag, bad or missing value, unreadable file named by a flag',
  3: 'run: the drain ended with committed outputs not stored',
  4: 'the store does not exist, refuses the credentials or cannot be reached',
  5: 'verify: outputs damaged or missing, or none stored for the app',
  6: 'wait-safe-exit: not safe to exit before the timeout',
  7: 'fetch: the agent refused or failed the request',
};

/** Where a command writes; tests pass their own. */
export interface CommandIo {
  out: (line: string) => void;
  err: (line: string) => void;
  env: NodeJS.ProcessEnv;
}

export const processIo: CommandIo = {
  out: (line) => void process.stdout.write(`${line}\n`),
  err: (line) => void process.stderr.write(`${line}\n`),
  env: process.env,
};

export interface Command<S extends Record<string, OptionSpec<unknown>>> {
  name: string;
  /** The usage line after `shuffle-agent `, e.g. `gc --store URL --older-than DURATION [flags]`. */
  usage: string;
  /** A paragraph or two of plain text: what it does, what it prints. */
  description: string;
  options: S;
  /** Whether `SHUFFLE_AGENT_*` environment variables set flags. */
  env: boolean;
  exitCodes: readonly ExitCode[];
  /** Flags the command cannot run without (checked before `run`). */
  required?: ReadonlyArray<keyof S>;
  run(config: ValuesOf<S>, io: CommandIo): Promise<ExitCode>;
}

/** Build a command, keeping its option table's types. */
export function command<S extends Record<string, OptionSpec<unknown>>>(spec: Command<S>): Command<S> {
  return spec;
}

/** The plain-text help of a command. */
export function helpText<S extends Record<string, OptionSpec<unknown>>>(cmd: Command<S>): string {
  return [
    `Usage: shuffle-agent ${cmd.usage}`,
    '',
    cmd.description,
    '',
    'Flags:',
    '  -h, --help  print this help',
    textReference(cmd.options, { env: cmd.env }).replace(/^(?=\S)/, '\n'),
    '',
    'Exit codes:',
    ...[...cmd.exitCodes].sort((a, b) => a - b).map((code) => `  ${code}  ${EXIT_MEANINGS[code]}`),
  ].join('\n');
}

/** Whether `-h` or `--help` appears among the flags (before a `--`). */
export function wantsHelp(argv: readonly string[]): boolean {
  const end = argv.indexOf('--');
  return (end < 0 ? argv : argv.slice(0, end)).some((a) => a === '-h' || a === '--help');
}

/** Parse, check, run; every error becomes one line on stderr and an exit code. */
export async function runCommand<S extends Record<string, OptionSpec<unknown>>>(cmd: Command<S>, argv: readonly string[], io: CommandIo = processIo): Promise<ExitCode> {
  if (wantsHelp(argv)) {
    io.out(helpText(cmd));
    return EXIT.ok;
  }
  let config: ValuesOf<S>;
  try {
    const parsed = resolveOptions(cmd.options, argv, cmd.env ? io.env : {});
    if (parsed.positional.length > 0) throw new ConfigError(cmd.name, `unexpected argument ${JSON.stringify(parsed.positional[0])}`);
    for (const key of cmd.required ?? []) {
      if (parsed.config[key] === undefined) throw new ConfigError(String(key), `--${cmd.options[key]?.flag ?? String(key)} is required`);
    }
    config = parsed.config;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    io.err(`shuffle-agent ${cmd.name}: ${err.message}`);
    io.err(`usage: shuffle-agent ${cmd.usage}  (shuffle-agent ${cmd.name} --help for more)`);
    return EXIT.usage;
  }
  try {
    return await cmd.run(config, io);
  } catch (err) {
    return reportError(cmd.name, err, io);
  }
}

/** One line for an error a user can act on; the stack trace only for what is a bug. */
export function reportError(name: string, err: unknown, io: Pick<CommandIo, 'err'>): ExitCode {
  if (err instanceof ConfigError) {
    io.err(`shuffle-agent ${name}: ${err.message}`);
    return EXIT.usage;
  }
  if (err instanceof StoreError) {
    io.err(`shuffle-agent ${name}: store error: ${describeError(err)}`);
    return EXIT.store;
  }
  io.err(`shuffle-agent ${name}: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  return EXIT.failure;
}
