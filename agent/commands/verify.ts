/** `shuffle-agent verify`: flags, usage and exit codes; the checking is store/verify.ts. */
import { option, parsers, type ValuesOf } from '../config/option-table.js';
import { RUN_OPTIONS } from '../config/run-options.js';
import { isSafeAppId } from '../spark/fallback-key.js';
import type { BlockStore } from '../store/block-store.js';
import { openSharedStore } from '../store/open-store.js';
import { formatVerifyReport, verifyStore } from '../store/verify.js';
import { command, EXIT, processIo, runCommand, type CommandIo, type ExitCode } from './command.js';

/** The options of `shuffle-agent verify`: the store settings of `run`, plus the app and output format. */
export const VERIFY_OPTIONS = {
  store: RUN_OPTIONS.store,
  fallbackLayout: RUN_OPTIONS.fallbackLayout,
  s3Endpoint: RUN_OPTIONS.s3Endpoint,
  s3Region: RUN_OPTIONS.s3Region,
  s3ForcePathStyle: RUN_OPTIONS.s3ForcePathStyle,
  s3Checksums: RUN_OPTIONS.s3Checksums,
  s3RequestTimeout: RUN_OPTIONS.s3RequestTimeout,
  appId: option({
    group: 'verify',
    flag: 'app-id',
    doc: 'Spark application id whose stored outputs are checked.',
    parse: (raw) => {
      if (!isSafeAppId(raw)) throw new Error(`${JSON.stringify(raw)} is not a usable app id`);
      return raw;
    },
  }),
  json: option({ group: 'verify', flag: 'json', default: 'false', boolean: true, doc: 'Print the report as JSON.', parse: parsers.bool }),
};


export const verifyCommand = command({
  name: 'verify',
  usage: 'verify --store URL --app-id ID [--json] [flags]',
  description: `Re-read what is stored for an application and check every map output the way Spark's
fallback reader depends on it: the index parses, the data length matches, every object sits under
the key Spark computes, and the bytes match the digest recorded at upload. Prints a report (or
JSON with --json); OK only when the store holds outputs for the app and all are intact.`,
  options: VERIFY_OPTIONS,
  env: true,
  required: ['store', 'appId'],
  exitCodes: [EXIT.ok, EXIT.usage, EXIT.store, EXIT.problems, EXIT.failure],
  run: verify,
});

async function verify(config: ValuesOf<typeof VERIFY_OPTIONS>, io: CommandIo): Promise<ExitCode> {
  const appId = config.appId as string;
  let store: BlockStore | undefined;
  try {
    // verify only reads: it must not abort anybody's uploads.
    const opened = await openSharedStore(config.store, config);
    store = opened;
    // A store that does not exist (or refuses us) is an error, not an empty store.
    await opened.probe({ write: false });
    const report = await verifyStore(store, appId, config.fallbackLayout);
    if (report.outputs === 0) {
      // Nothing to vouch for: most likely a wrong app id, store or layout. Never "OK".
      io.err(`shuffle-agent verify: no map outputs stored for ${appId} in ${store.url}`);
      if (config.json) io.out(JSON.stringify(report, null, 2));
      return EXIT.problems;
    }
    io.out(config.json ? JSON.stringify(report, null, 2) : formatVerifyReport(report));
    return report.problems.length === 0 ? EXIT.ok : EXIT.problems;
  } finally {
    await store?.close();
  }
}

/** `shuffle-agent verify` with the arguments after the command name; tests pass their own output. */
export function runVerify(argv: readonly string[], io: Partial<CommandIo> = {}): Promise<ExitCode> {
  return runCommand(verifyCommand, argv, { ...processIo, ...io });
}
