/**
 * `shuffle-agent <command>`, loaded by bin.cts (which sizes the thread pool first): run (the agent), and the helper commands. Exit codes:
 * 0 ok; 1 unexpected failure (and, for wait-safe-exit, not safe to exit before the timeout);
 * 2 bad flag or value; 3 the drain after SIGTERM ended (deadline or second signal) with committed
 * outputs not stored: the log line "exiting with outputs not stored" lists them (`notStored`).
 */
import { readFile } from 'node:fs/promises';
import { ConfigError, markdownReference, option, parsers, printable, resolveOptions } from './config/option-table.js';
import { appToken, DEFAULT_APP_TOKEN_TTL_MS } from './serve/auth.js';
import { appKeysFromFile } from './serve/config.js';
import { RUN_OPTIONS, type RunConfig } from './config/run-options.js';
import { createLogger } from './observability/logger.js';
import { startAgent } from './main.js';
import { VERSION } from './version.js';
import { waitSafeExit, WAIT_SAFE_EXIT_OPTIONS } from './lifecycle/wait-safe-exit.js';

export const EXIT = { ok: 0, failure: 1, usage: 2, drainTimeout: 3 } as const;

const USAGE = `shuffle-agent ${VERSION}
Usage: shuffle-agent <command> [flags]

Commands:
  run             watch Spark local dirs, write outputs back to the store, serve them
  wait-safe-exit  request a drain and wait until the agent is safe to exit (preStop helper):
                  --http URL (default http://127.0.0.1:9464) --timeout SECONDS (default 25);
                  exit 0 once safe_to_exit, 1 on timeout
  fetch           fetch shuffle partitions from an agent over gRPC
  app-token       print the per-app gRPC token of --app-id ID under --key-file FILE (the
                  cluster key of --grpc-app-key-file), valid for --ttl (12h), for tools that
                  issue tokens themselves
  verify          check every map output an app has in a store (--store URL --app-id ID)
  gc              delete the copies of apps that are gone (--store URL --older-than DURATION
                  [--dry-run]): app prefixes whose newest object, the plugin's heartbeat
                  included, is older than DURATION (at least 30m); one JSON line per app
  config-doc      print the configuration reference (Markdown)
  version         print the version

Run 'shuffle-agent run --help' for the flags of run.`;

/** The close after a drain (gRPC fetches finishing, writes aborted) may run until this long after
 * the drain deadline, so `--drain-timeout` 25 s + this stays under the pod's default 30 s grace. */
const CLOSE_AFTER_DEADLINE_MS = 3_000;

async function run(argv: string[]): Promise<number> {
  if (argv.includes('--help')) {
    process.stdout.write(markdownReference(RUN_OPTIONS) + '\n');
    return EXIT.ok;
  }
  const { config: raw, positional } = resolveOptions(RUN_OPTIONS, argv, process.env);
  if (positional.length > 0) throw new ConfigError('run', `unexpected argument ${JSON.stringify(positional[0])}`);
  const envAppId = process.env.SPARK_APPLICATION_ID;
  const config: RunConfig = { ...raw, appId: raw.appId ?? (envAppId && envAppId !== '' ? RUN_OPTIONS.appId.parse(envAppId) : 'local-app') };
  const logger = createLogger(config.logLevel);
  logger.info({ version: VERSION, config: printable(RUN_OPTIONS, config) }, 'starting');
  if (!config.terminationSources.includes('sigterm')) logger.warn('sigterm is not a termination source: SIGTERM stops the agent at once, without a drain');
  // The backstop for a promise rejection nothing handled (a bug: every request path handles its
  // own errors). Log and count, and keep serving: the rejection belongs to one request or one
  // background step, the state every tenant depends on (queue, watches, open files) is not left
  // half-changed by it, and exiting would turn any such bug reachable from the network into a
  // node-wide outage (issue 17: one malformed HTTP request stopped every tenant's write-back).
  // Synchronous exceptions (uncaughtException) still end the process: there the state is unknown.
  const counted: { metrics?: { unhandledRejection(): void } } = {};
  process.on('unhandledRejection', (reason) => {
    counted.metrics?.unhandledRejection();
    logger.error({ err: reason }, 'unhandled promise rejection (a bug): logged, counted in shuffle_agent_unhandled_rejections_total, still serving');
  });
  const agent = await startAgent(config, logger);
  counted.metrics = agent.metrics;

  // SIGTERM/SIGINT reach the lifecycle through its signal source; the first one drains until
  // --drain-timeout, a second one resolves `exitRequested` at once.
  const outcome = await agent.exitRequested;
  // From here on, one more signal exits at once, with the accounting as it stands.
  const code = await new Promise<number>((resolveExit) => {
    const account = (): { notStored: string[]; code: number } => {
      const notStored = agent.writeback.pending().map((o) => o.id);
      return { notStored, code: notStored.length === 0 ? EXIT.ok : EXIT.drainTimeout };
    };
    const report = (why: string): number => {
      const { notStored, code } = account();
      if (code === EXIT.ok) logger.info({ reason: why, exitCode: code }, 'everything committed is stored; exiting');
      else logger.error({ reason: why, exitCode: code, notStoredCount: notStored.length, notStored }, 'exiting with outputs not stored');
      return code;
    };
    const onLateSignal = (signal: NodeJS.Signals): void => resolveExit(report(`${signal} while closing`));
    process.on('SIGTERM', onLateSignal);
    process.on('SIGINT', onLateSignal);
    logger.info({ reason: outcome.reason, notice: outcome.notice.id }, 'closing');
    // A drain that ended early leaves gRPC readers their --grpc-close-timeout; one that hit the
    // deadline leaves the close 3 s.
    const closeBy = (agent.lifecycle.notices.exitBy ?? Date.now()) + CLOSE_AFTER_DEADLINE_MS;
    const budgetMs = Math.max(CLOSE_AFTER_DEADLINE_MS, Math.min((config.grpcCloseTimeout + 1) * 1000, closeBy - Date.now()));
    const budget = setTimeout(() => resolveExit(report('close took too long')), budgetMs);
    agent.close().then(
      () => {
        clearTimeout(budget);
        resolveExit(report(outcome.reason));
      },
      (err: unknown) => {
        clearTimeout(budget);
        logger.error({ err }, 'close failed');
        resolveExit(report(outcome.reason));
      },
    );
  });
  await new Promise<void>((resolveFlush) => logger.flush(() => resolveFlush()));
  return code;
}

async function waitSafeExitCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help')) {
    process.stdout.write(markdownReference(WAIT_SAFE_EXIT_OPTIONS) + '\n');
    return EXIT.ok;
  }
  const { config, positional } = resolveOptions(WAIT_SAFE_EXIT_OPTIONS, argv, process.env);
  if (positional.length > 0) throw new ConfigError('wait-safe-exit', `unexpected argument ${JSON.stringify(positional[0])}`);
  const safe = await waitSafeExit({
    url: config.http,
    timeoutMs: config.timeout * 1000,
    drain: config.drain,
    log: (line) => process.stderr.write(`shuffle-agent wait-safe-exit: ${line}\n`),
  });
  return safe ? EXIT.ok : EXIT.failure;
}

const APP_TOKEN_OPTIONS = {
  keyFile: option({ group: 'app-token', flag: 'key-file', doc: 'The cluster key file (the Secret behind --grpc-app-key-file).', parse: parsers.string }),
  appId: RUN_OPTIONS.appId,
  ttl: option({ group: 'app-token', flag: 'ttl', default: `${DEFAULT_APP_TOKEN_TTL_MS / 3_600_000}h`, doc: 'How long the token is valid (e.g. `12h`, `7d`).', parse: parsers.duration }),
};

async function appTokenCommand(argv: string[]): Promise<number> {
  const { config } = resolveOptions(APP_TOKEN_OPTIONS, argv, {});
  if (config.keyFile === undefined || config.appId === undefined) throw new ConfigError('app-token', 'usage: shuffle-agent app-token --key-file FILE --app-id ID');
  const keys = appKeysFromFile(await readFile(config.keyFile));
  if (typeof keys === 'string') throw new ConfigError('keyFile', `${config.keyFile} ${keys}`);
  // Signed with the first key, as the agents sign.
  process.stdout.write(`${appToken(keys[0] as Buffer, config.appId, Math.floor((Date.now() + config.ttl) / 1000))}\n`);
  return EXIT.ok;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'run':
        return await run(rest);
      case 'wait-safe-exit':
        return await waitSafeExitCommand(rest);
      case 'fetch':
        return await (await import('./serve/client.js')).runFetch(rest);
      case 'app-token':
        return await appTokenCommand(rest);
      case 'verify':
        return await (await import('./store/verify.js')).runVerify(rest);
      case 'gc':
        return await (await import('./store/gc.js')).runGc(rest);
      case 'config-doc':
        process.stdout.write(markdownReference(RUN_OPTIONS) + '\n');
        return EXIT.ok;
      case 'version':
      case '--version':
        process.stdout.write(`${VERSION}\n`);
        return EXIT.ok;
      case undefined:
      case 'help':
      case '--help':
        process.stdout.write(USAGE + '\n');
        return command === undefined ? EXIT.usage : EXIT.ok;
      default:
        process.stderr.write(`shuffle-agent: unknown command ${JSON.stringify(command)}\n${USAGE}\n`);
        return EXIT.usage;
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`shuffle-agent: ${err.message}\n`);
      return EXIT.usage;
    }
    process.stderr.write(`shuffle-agent: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return EXIT.failure;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    // Let pino flush its buffered lines before exiting.
    setImmediate(() => process.exit(code));
  },
  (err: unknown) => {
    process.stderr.write(`shuffle-agent: ${String(err)}\n`);
    process.exit(EXIT.failure);
  },
);
