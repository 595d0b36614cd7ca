/**
 * `shuffle-agent <command>`, loaded by bin.cts (which sizes the thread pool first). Each command
 * lives in commands/ with its flags, usage and exit codes; this file only picks one. The exit
 * codes, one meaning each, are EXIT in commands/command.ts.
 */
import { closest, markdownReference } from './config/option-table.js';
import { RUN_OPTIONS } from './config/run-options.js';
import { VERSION } from './version.js';
import { EXIT, EXIT_MEANINGS, processIo, reportError, runCommand, type CommandIo, type ExitCode } from './commands/command.js';

/** The commands, loaded when named: `fetch` does not pay for the S3 SDK, nor `gc` for gRPC. */
const COMMANDS: Record<string, { summary: string; run: (argv: readonly string[], io: CommandIo) => Promise<ExitCode> }> = {
  run: { summary: 'watch Spark local dirs, write outputs back to the store, serve them', run: async (argv, io) => runCommand((await import('./commands/run.js')).runAgentCommand, argv, io) },
  'wait-safe-exit': { summary: 'request a drain and wait until the agent is safe to exit (preStop)', run: async (argv, io) => runCommand((await import('./commands/wait-safe-exit.js')).waitSafeExitCommand, argv, io) },
  fetch: { summary: 'fetch shuffle partitions from an agent over gRPC', run: async (argv, io) => runCommand((await import('./commands/fetch.js')).fetchCommand, argv, io) },
  'app-token': { summary: "print an app's gRPC token (for tools that issue tokens themselves)", run: async (argv, io) => runCommand((await import('./commands/app-token.js')).appTokenCommand, argv, io) },
  verify: { summary: 'check every map output an app has in a store', run: async (argv, io) => runCommand((await import('./commands/verify.js')).verifyCommand, argv, io) },
  gc: { summary: 'delete the stored copies of apps that are gone', run: async (argv, io) => runCommand((await import('./commands/gc.js')).gcCommand, argv, io) },
};

const USAGE = `shuffle-agent ${VERSION}
Usage: shuffle-agent <command> [flags]

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(15)} ${c.summary}`)
  .join('\n')}
  config-doc      print the configuration reference of run (Markdown)
  version         print the version

Run 'shuffle-agent <command> --help' for the flags of a command.

Exit codes:
${Object.entries(EXIT_MEANINGS)
  .map(([code, meaning]) => `  ${code}  ${meaning}`)
  .join('\n')}`;

export async function main(argv: readonly string[], io: CommandIo = processIo): Promise<ExitCode> {
  const [name, ...rest] = argv;
  try {
    const entry = name !== undefined && Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
    if (entry) return await entry.run(rest, io);
    switch (name) {
      case 'config-doc':
        io.out(markdownReference(RUN_OPTIONS));
        return EXIT.ok;
      case 'version':
      case '--version':
        io.out(VERSION);
        return EXIT.ok;
      case 'help':
      case '--help':
      case '-h':
        io.out(USAGE);
        return EXIT.ok;
      case undefined:
        io.err(USAGE);
        return EXIT.usage;
      default: {
        const near = closest(name, [...Object.keys(COMMANDS), 'config-doc', 'version']);
        io.err(`shuffle-agent: unknown command ${JSON.stringify(name)}${near ? ` (did you mean ${near}?)` : ''}`);
        io.err("Run 'shuffle-agent --help' for the list of commands.");
        return EXIT.usage;
      }
    }
  } catch (err) {
    return reportError(name ?? '', err, io);
  }
}

// Node's warnings (the AWS SDK's Node-version notice is seven lines) as one line each; `run`
// replaces this with JSON log lines.
process.removeAllListeners('warning');
process.on('warning', (w) => process.stderr.write(`shuffle-agent: ${w.name}: ${w.message.split('\n')[0] ?? ''}\n`));

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
