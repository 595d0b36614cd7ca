#!/usr/bin/env node
/**
 * `shuffle-agent <command>`: run (the agent), and the helper commands. Exit codes:
 * 0 ok; 1 unexpected failure; 2 bad flag or value; 3 drain timeout hit with outputs not stored.
 */
import './threadpool.js';
import { ConfigError, markdownReference, printable, resolveOptions } from './config/option-table.js';
import { RUN_OPTIONS, type RunConfig } from './config/run-options.js';
import { createLogger } from './observability/logger.js';
import { startAgent } from './main.js';
import { VERSION } from './version.js';

export const EXIT = { ok: 0, failure: 1, usage: 2, drainTimeout: 3 } as const;

const USAGE = `shuffle-agent ${VERSION}
Usage: shuffle-agent <command> [flags]

Commands:
  run          watch Spark local dirs, write outputs back to the store, serve them
  fetch        fetch shuffle partitions from an agent over gRPC
  verify       check every map output an app has in a store (--store URL --app-id ID)
  config-doc   print the configuration reference (Markdown)
  version      print the version

Run 'shuffle-agent run --help' for the flags of run.`;

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
  const agent = await startAgent(config, logger);

  return await new Promise<number>((resolveExit) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals): void => {
      signals++;
      if (signals > 1) {
        // A second signal: exit at once, with the same accounting.
        const pending = agent.writeback.pending().map((o) => o.id);
        logger.warn({ signal, notStored: pending }, 'second signal; exiting now');
        resolveExit(pending.length === 0 ? EXIT.ok : EXIT.drainTimeout);
        return;
      }
      const drainTimeoutMs = 25_000;
      logger.info({ signal, drainTimeoutMs }, 'termination signal; draining');
      void agent
        .drain(drainTimeoutMs)
        .then(async (complete) => {
          const notStored = agent.writeback.pending().map((o) => o.id);
          await agent.close();
          if (complete) logger.info('everything committed is stored; exiting');
          else logger.error({ notStored }, 'drain timed out; outputs not stored');
          resolveExit(complete ? EXIT.ok : EXIT.drainTimeout);
        })
        .catch((err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          resolveExit(EXIT.failure);
        });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'run':
        return await run(rest);
      case 'fetch':
        return await (await import('./serve/client.js')).runFetch(rest);
      case 'verify':
        return await (await import('./store/verify.js')).runVerify(rest);
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
