/** `shuffle-agent app-token`: print an app's gRPC token, for tools that issue tokens themselves. */
import { readFile } from 'node:fs/promises';
import { option, parsers } from '../config/option-table.js';
import { RUN_OPTIONS } from '../config/run-options.js';
import { appToken } from '../serve/auth.js';
import { appKeyFromFile, MIN_APP_KEY_BYTES } from '../serve/config.js';
import { ConfigError, describeError } from '../util/errors.js';
import { command, EXIT } from './command.js';

export const APP_TOKEN_OPTIONS = {
  keyFile: option({ group: 'app-token', flag: 'key-file', metavar: 'FILE', doc: 'The cluster key file (the Secret behind --grpc-app-key-file).', parse: parsers.string }),
  appId: { ...RUN_OPTIONS.appId, metavar: 'ID', doc: 'The Spark application id the token is for.' },
};

export const appTokenCommand = command({
  name: 'app-token',
  usage: 'app-token --key-file FILE --app-id ID',
  description: `Print the per-app gRPC token of --app-id under the cluster key in --key-file (the
Secret behind the agent's --grpc-app-key-file), one line on stdout.`,
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
    const key = appKeyFromFile(raw);
    if (key.length < MIN_APP_KEY_BYTES) throw new ConfigError('keyFile', `--key-file ${keyFile} holds ${key.length} bytes; at least ${MIN_APP_KEY_BYTES}`);
    io.out(appToken(key, config.appId as string));
    return EXIT.ok;
  },
});
