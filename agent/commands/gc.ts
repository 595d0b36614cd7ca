/** `shuffle-agent gc`: flags, usage and exit codes; the deciding and deleting is store/gc.ts. */
import { option, parsers, type ValuesOf } from '../config/option-table.js';
import { RUN_OPTIONS } from '../config/run-options.js';
import { collectGarbage, MIN_OLDER_THAN_MS } from '../store/gc.js';
import { openSharedStore } from '../store/open-store.js';
import type { BlockStore, StoreProbe } from '../store/block-store.js';
import { command, EXIT, processIo, runCommand, type CommandIo, type ExitCode } from './command.js';

/** The options of `shuffle-agent gc`: the store settings of `run`, the age and the dry run. */
export const GC_OPTIONS = {
  store: RUN_OPTIONS.store,
  s3Endpoint: RUN_OPTIONS.s3Endpoint,
  s3Region: RUN_OPTIONS.s3Region,
  s3ForcePathStyle: RUN_OPTIONS.s3ForcePathStyle,
  s3Checksums: RUN_OPTIONS.s3Checksums,
  s3RequestTimeout: RUN_OPTIONS.s3RequestTimeout,
  olderThan: option({
    group: 'gc',
    flag: 'older-than',
    doc: `Delete app prefixes whose newest object is older than this (e.g. \`12h\`, \`7d\`); at least ${MIN_OLDER_THAN_MS / 60_000}m, three times the longest plugin heartbeat interval.`,
    parse: (raw) => {
      const ms = parsers.duration(raw);
      if (ms < MIN_OLDER_THAN_MS) throw new Error(`must be at least ${MIN_OLDER_THAN_MS / 60_000}m (three times the longest heartbeat interval, 10m), got ${raw}`);
      return ms;
    },
  }),
  dryRun: option({ group: 'gc', flag: 'dry-run', default: 'false', boolean: true, doc: 'Print what would be deleted; delete nothing.', parse: parsers.bool }),
};


export const gcCommand = command({
  name: 'gc',
  usage: 'gc --store URL --older-than DURATION [--dry-run] [flags]',
  description: `Delete the prefixes of apps that are gone: those whose newest object, the plugin's heartbeat
included, is older than --older-than (at least ${MIN_OLDER_THAN_MS / 60_000}m). Safe beside running agents: a prefix that
changed during the run is kept. Prints one JSON line per app, then a summary line.`,
  options: GC_OPTIONS,
  env: true,
  required: ['store', 'olderThan'],
  exitCodes: [EXIT.ok, EXIT.usage, EXIT.store, EXIT.failure],
  run: gc,
});

async function gc(config: ValuesOf<typeof GC_OPTIONS>, io: CommandIo & { now?: () => number }): Promise<ExitCode> {
  let store: (BlockStore & StoreProbe) | undefined;
  try {
    // Live agents may share the store: their uploads and temp files are not gc's to touch.
    store = await openSharedStore(config.store, config, { sweepPartials: false });
    // A store that does not exist (or refuses us) is an error, not an empty store.
    await store.probe({ write: false });
    const total = { apps: 0, deleted: 0, wouldDelete: 0, kept: 0, failed: 0, objectsDeleted: 0, bytesDeleted: 0 };
    for await (const d of collectGarbage(store, { olderThanMs: config.olderThan as number, dryRun: config.dryRun, ...(io.now ? { now: io.now } : {}) })) {
      io.out(JSON.stringify(d));
      total.apps++;
      if (d.action === 'deleted') {
        total.deleted++;
        total.objectsDeleted += d.deleted ?? 0;
        total.bytesDeleted += d.bytes;
      } else if (d.action === 'would-delete') total.wouldDelete++;
      else if (d.action === 'kept') total.kept++;
      else total.failed++;
    }
    io.out(JSON.stringify({ summary: true, store: store.url, dryRun: config.dryRun, olderThanSeconds: (config.olderThan as number) / 1000, ...total }));
    if (total.failed > 0) io.err(`shuffle-agent gc: ${total.failed} app prefix(es) could not be deleted (see their lines)`);
    return total.failed > 0 ? EXIT.store : EXIT.ok;
  } finally {
    await store?.close();
  }
}

/** `shuffle-agent gc` with the arguments after the command name; for tests, with their own output and clock. */
export function runGc(argv: readonly string[], io: Partial<CommandIo> & { now?: () => number } = {}): Promise<ExitCode> {
  return runCommand({ ...gcCommand, run: (config, cio) => gc(config, { ...cio, ...(io.now ? { now: io.now } : {}) }) }, argv, { ...processIo, ...io });
}
