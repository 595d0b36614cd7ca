/** `shuffle-agent wait-safe-exit`, the preStop helper: flags, usage and exit codes; the waiting is lifecycle/wait-safe-exit.ts. */
import { option, parsers } from '../config/option-table.js';
import { waitSafeExit } from '../lifecycle/wait-safe-exit.js';
import { command, EXIT } from './command.js';

export const WAIT_SAFE_EXIT_OPTIONS = {
  http: option({
    group: 'wait-safe-exit',
    flag: 'http',
    metavar: 'URL',
    default: 'http://127.0.0.1:9464',
    doc: "Base URL of the agent's HTTP server.",
    parse: (raw) => {
      const url = new URL(raw);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`expected an http:// URL, got ${JSON.stringify(raw)}`);
      return raw.replace(/\/+$/, '');
    },
  }),
  timeout: option({
    group: 'wait-safe-exit',
    flag: 'timeout',
    metavar: 'SECONDS',
    default: '25',
    doc: 'Seconds to wait for safe_to_exit before giving up (exit code 6).',
    parse: parsers.number(0, 86_400),
  }),
  drain: option({
    group: 'wait-safe-exit',
    flag: 'drain',
    default: 'true',
    boolean: true,
    doc: 'Request a drain first (`--drain=false` only waits).',
    parse: parsers.bool,
  }),
};

export const waitSafeExitCommand = command({
  name: 'wait-safe-exit',
  usage: 'wait-safe-exit [--http URL] [--timeout SECONDS] [--drain=false]',
  description: `Ask the agent to drain (POST /v1/drain), then wait on its long-poll until it reports
safe_to_exit or the timeout passes. Progress lines go to stderr.`,
  options: WAIT_SAFE_EXIT_OPTIONS,
  env: true,
  exitCodes: [EXIT.ok, EXIT.usage, EXIT.timeout, EXIT.failure],
  run: async (config, io) => {
    const safe = await waitSafeExit({
      url: config.http,
      timeoutMs: config.timeout * 1000,
      drain: config.drain,
      log: (line) => io.err(`shuffle-agent wait-safe-exit: ${line}`),
    });
    return safe ? EXIT.ok : EXIT.timeout;
  },
});
