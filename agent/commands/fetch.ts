/** `shuffle-agent fetch`: flags, usage and exit codes; the client is serve/client.ts. */
import { createWriteStream } from 'node:fs';
import { readFile, rename, unlink } from 'node:fs/promises';
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { option, parsers, type ValuesOf } from '../config/option-table.js';
import { isSafeAppId } from '../spark/fallback-key.js';
import { isValidMapId, isValidShuffleId } from '../spark/file-names.js';
import { ShuffleAgentClient, type ClientTls } from '../serve/client.js';
import { ConfigError, describeError } from '../util/errors.js';
import { command, EXIT, processIo, runCommand, type CommandIo, type ExitCode } from './command.js';

export const FETCH_OPTIONS = {
  target: option({ group: 'fetch', flag: 'target', doc: 'Agent address, HOST:PORT.', parse: parsers.string }),
  appId: option({
    group: 'fetch',
    flag: 'app-id',
    doc: 'Spark application id.',
    parse: (raw) => {
      if (!isSafeAppId(raw)) throw new Error(`${JSON.stringify(raw)} is not a Spark application id`);
      return raw;
    },
  }),
  shuffle: option({
    group: 'fetch',
    flag: 'shuffle',
    doc: 'Shuffle id.',
    parse: (raw) => {
      const n = parsers.int(0, 2147483647)(raw);
      if (!isValidShuffleId(n)) throw new Error('not a shuffle id');
      return n;
    },
  }),
  map: option({
    group: 'fetch',
    flag: 'map',
    doc: 'Map id (the map task attempt id).',
    parse: (raw) => {
      if (!isValidMapId(raw.trim())) throw new Error(`expected a non-negative int64, got ${JSON.stringify(raw)}`);
      return raw.trim();
    },
  }),
  reduce: option({
    group: 'fetch',
    flag: 'reduce',
    doc: 'Reduce partition R, or R-E for partitions R to E-1 (end exclusive, as Spark ranges are).',
    parse: parseReduce,
  }),
  output: option({ group: 'fetch', flag: 'output', short: 'o', metavar: 'FILE', doc: 'Write to FILE (atomically); stdout by default.', parse: parsers.string }),
  tokenFile: option({ group: 'fetch', flag: 'token-file', doc: 'File with the bearer token.', parse: parsers.string, secret: true }),
  tlsCa: option({ group: 'fetch', flag: 'tls-ca', doc: 'PEM CA that signed the server certificate: turns TLS on.', parse: parsers.string }),
  tlsCert: option({ group: 'fetch', flag: 'tls-cert', doc: 'PEM client certificate (mTLS).', parse: parsers.string }),
  tlsKey: option({ group: 'fetch', flag: 'tls-key', doc: 'PEM client key (mTLS).', parse: parsers.string }),
  tls: option({ group: 'fetch', flag: 'tls', boolean: true, doc: 'Use TLS with the system roots.', parse: parsers.bool }),
  timeout: option({ group: 'fetch', flag: 'timeout', default: '300', doc: 'Seconds before the fetch is abandoned.', parse: parsers.number(0.001, 86_400) }),
};

export function parseReduce(raw: string): { start: number; end: number } {
  const m = /^(\d+)(?:-(\d+))?$/.exec(raw.trim());
  if (!m) throw new Error(`expected R or R-E, got ${JSON.stringify(raw)}`);
  const start = Number(m[1]);
  const end = m[2] === undefined ? start + 1 : Number(m[2]);
  if (start > 2147483647 || end > 2147483647) throw new Error('reduce ids are Java ints');
  if (end <= start) throw new Error(`R-E needs E > R (E is exclusive), got ${raw}`);
  return { start, end };
}

export const fetchCommand = command({
  name: 'fetch',
  usage: 'fetch --target HOST:PORT --app-id ID --shuffle S --map M --reduce R[-E] [-o FILE] [flags]',
  description: `Fetch reduce partitions R (or R to E-1) of one map output from an agent's block service,
to FILE (written atomically) or stdout. Prints the byte count on stderr.`,
  options: FETCH_OPTIONS,
  env: false,
  required: ['target', 'appId', 'shuffle', 'map', 'reduce'],
  exitCodes: [EXIT.ok, EXIT.usage, EXIT.remote, EXIT.failure],
  run: (config, io) => fetchBlock(config, io, process.stdout),
});

async function readFlagFile(key: string, flag: string, path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new ConfigError(key, `--${flag} ${path}: ${describeError(err)}`);
  }
}

async function fetchBlock(config: ValuesOf<typeof FETCH_OPTIONS>, io: CommandIo, stdout: Writable): Promise<ExitCode> {
  const target = config.target as string;
  const appId = config.appId as string;
  const shuffle = config.shuffle as number;
  const map = config.map as string;
  const reduce = config.reduce as { start: number; end: number };
  const token = config.tokenFile !== undefined ? (await readFlagFile('tokenFile', 'token-file', config.tokenFile)).toString('utf8').trim() : undefined;
  let tls: ClientTls | undefined;
  if (config.tlsCa !== undefined || config.tls === true || config.tlsCert !== undefined) {
    tls = {};
    if (config.tlsCa !== undefined) tls.ca = await readFlagFile('tlsCa', 'tls-ca', config.tlsCa);
    if (config.tlsCert !== undefined) tls.cert = await readFlagFile('tlsCert', 'tls-cert', config.tlsCert);
    if (config.tlsKey !== undefined) tls.key = await readFlagFile('tlsKey', 'tls-key', config.tlsKey);
  }
  const client = new ShuffleAgentClient({ target, ...(token !== undefined ? { token } : {}), ...(tls ? { tls } : {}) });
  let temp: string | undefined;
  try {
    const req = { app_id: appId, shuffle_id: shuffle, map_id: map, start_reduce_id: reduce.start, end_reduce_id: reduce.end };
    const deadline = Date.now() + config.timeout * 1000;
    let bytes: number;
    if (config.output !== undefined) {
      temp = `${config.output}.partial-${process.pid}`;
      const sink = createWriteStream(temp, { flags: 'wx' });
      try {
        bytes = await client.fetchBlockTo(req, sink, { deadline });
      } finally {
        sink.end();
        await once(sink, 'close');
      }
      await rename(temp, config.output);
      temp = undefined;
    } else {
      bytes = await client.fetchBlockTo(req, stdout, { deadline });
    }
    io.err(`fetched ${bytes} bytes of ${appId}/${shuffle}/${map} partitions [${reduce.start}, ${reduce.end})`);
    return EXIT.ok;
  } catch (err) {
    const e = err as Partial<grpc.ServiceError>;
    // The output file could not be written (exists, no such directory, no permission).
    if (typeof e.code === 'string' && config.output !== undefined) throw new ConfigError('output', `--output ${config.output}: ${describeError(err)}`);
    if (typeof e.code !== 'number') throw err;
    io.err(`shuffle-agent fetch: ${grpc.status[e.code]}: ${e.details ?? ''}`);
    return EXIT.remote;
  } finally {
    if (temp !== undefined) await unlink(temp).catch(() => undefined);
    client.close();
  }
}

/** Streams of `shuffle-agent fetch` (tests pass their own). */
export interface FetchIo {
  stdout: Writable;
  stderr: Writable;
  env: NodeJS.ProcessEnv;
}

/** `shuffle-agent fetch` with the arguments after the command name. */
export function runFetch(argv: readonly string[], io: FetchIo = { stdout: process.stdout, stderr: process.stderr, env: process.env }): Promise<ExitCode> {
  const cio: CommandIo = { ...processIo, out: (l) => void io.stdout.write(`${l}\n`), err: (l) => void io.stderr.write(`${l}\n`), env: io.env };
  return runCommand({ ...fetchCommand, run: (config, c) => fetchBlock(config, c, io.stdout) }, argv, cio);
}
