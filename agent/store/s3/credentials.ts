/**
 * The SDK's default credential chain (environment, config files, IRSA's web identity token, ECS and
 * EC2 metadata), with its failures held for a moment.
 *
 * The SDK keeps credentials it found until they expire, but runs the whole chain again on every
 * request while it finds none: config files read, the metadata endpoints connected to, an error
 * object built per provider. An agent with thousands of outputs to write and no credentials yet
 * (a role not bound, a token file not mounted) retried every output against that chain and used
 * a whole core doing so (bench/RESULTS.md, sixth session: 3,000 pending outputs, 95 % of a core).
 * A failure is now answered again, without the chain, for `holdMs`: the chain runs at most once
 * per `holdMs`, and credentials that appear are used within `holdMs`.
 */
import { defaultProvider } from '@aws-sdk/credential-provider-node';

/** How long a failed look-up of the default chain is answered again without running it. */
const CREDENTIALS_FAILURE_HOLD_MS = 1000;

/** What the SDK passes to `credentialDefaultProvider` (its client's region, logger and so on). */
export type DefaultChainInit = Parameters<typeof defaultProvider>[0];

/** `provider`, except that a failure is rethrown without calling it again for `holdMs`. */
export function holdFailures<A extends unknown[], T>(provider: (...args: A) => Promise<T>, holdMs: number, now: () => number = Date.now): (...args: A) => Promise<T> {
  let failed: { at: number; err: unknown } | undefined;
  return async (...args: A): Promise<T> => {
    if (failed && now() - failed.at < holdMs) throw failed.err;
    try {
      const value = await provider(...args);
      failed = undefined;
      return value;
    } catch (err) {
      failed = { at: now(), err };
      throw err;
    }
  };
}

/** For `S3ClientConfig.credentialDefaultProvider`: the SDK's own default chain, failures held. */
export function defaultChainHoldingFailures(init: DefaultChainInit): ReturnType<typeof defaultProvider> {
  return holdFailures(defaultProvider(init), CREDENTIALS_FAILURE_HOLD_MS);
}
