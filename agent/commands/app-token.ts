/** `shuffle-agent app-token`: print an app's gRPC token, for tools that issue tokens themselves. */
import { readFile } from 'node:fs/promises';
import { option, parsers } from '../config/option-table.js';
import { RUN_OPTIONS } from '../config/run-options.js';
import { appToken, DEFAULT_APP_TOKEN_TTL_MS } from '../serve/auth.js';
import { appKeysFromFile } from '../serve/config.js';
import { ConfigError, describeError } from '../util/errors.js';
import { command, EXIT } from './command.js';

export const APP_TOKEN_OPTIONS = {
  keyFile: option({ group: 'app-token', flag: 'key-file', metavar: 'FILE', doc: 'The cluster key file (the Secret behind --grpc-app-key-file).', parse: parsers.string }),
  appId: { ...RUN_OPTIONS.appId, metavar: 'ID', doc: 'The Spark application id the token is for.' },
  ttl: option({ group: 'app-token', flag: 'ttl', metavar: 'DURATION', default: `${DEFAULT_APP_TOKEN_TTL_MS / 3_600_000}h`, doc: 'How long the token is valid (e.g. `12h`, `7d`).', parse: parsers.duration }),
};

export const appTokenCommand = command({
  name: 'app-token',
  usage: 'app-token --key-file FILE --app-id ID [--ttl DURATION]',
  description: `Print the per-app gRPC token of --app-id under the cluster key in --key-file (the
Secret behind the agent's --grpc-app-key-file), valid for --ttl, one line on stdout. With two
keys in the file (a rotation), it signs with the first, as the agents do.`,
  options: APP_TOKEN_OPTIONS,
  env: false,
  required: ['keyFile', 'appId'],
  exitCodes: [EXIT.ok, EXIT.usage, EXIT.failure],
  run: async (config, io) => {
    const keyFile = config.keyFile as string;
    let raw: Buffer;
    try {
      raw = await readFile(keyFile);
    } catch (err) {
      throw new ConfigError('keyFile', `--key-file ${keyFile}: ${describeError(err)}`);
    }
    const keys = appKeysFromFile(raw);
    if (typeof keys === 'string') throw new ConfigError('keyFile', `--key-file ${keyFile} ${keys}`);
    // Signed with the first key, as the agents sign.
    io.out(appToken(keys[0] as Buffer, config.appId as string, Math.floor((Date.now() + (config.ttl as number)) / 1000)));
    return EXIT.ok;
  },
});
