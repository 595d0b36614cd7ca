/** `shuffle-agent run`: the agent itself. Its flags are the typed table in config/run-options.ts. */
import type { ValuesOf } from '../config/option-table.js';
import { printable } from '../config/option-table.js';
import { RUN_OPTIONS, type RunConfig } from '../config/run-options.js';
import { writeFileSync } from 'node:fs';
import { createLogger, logProcessWarnings, type Logger } from '../observability/logger.js';
import { startAgent } from '../main.js';
import { VERSION } from '../version.js';
import { command, EXIT, type CommandIo, type ExitCode } from './command.js';

/** The close after a drain (gRPC fetches finishing, writes aborted) may run until this long after
 * the drain deadline, so `--drain-timeout` 25 s + this stays under the pod's default 30 s grace. */
const CLOSE_AFTER_DEADLINE_MS = 3_000;

async function run(raw: ValuesOf<typeof RUN_OPTIONS>, io: CommandIo): Promise<ExitCode> {
  const envAppId = io.env.SPARK_APPLICATION_ID;
  const config: RunConfig = { ...raw, appId: raw.appId ?? (envAppId && envAppId !== '' ? RUN_OPTIONS.appId.parse(envAppId) : 'local-app') };
  const logger = createLogger(config.logLevel, undefined, { env: io.env });
  // Nothing outside JSON: Node's warnings (the AWS SDK's Node-version notice) become log lines.
  logProcessWarnings(logger);
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
  const code = await new Promise<ExitCode>((resolveExit) => {
    const account = (): { notStored: string[]; code: ExitCode } => {
      const notStored = agent.writeback.pending().map((o) => o.id);
      return { notStored, code: notStored.length === 0 ? EXIT.ok : EXIT.notStored };
    };
    const report = (why: string): ExitCode => {
      const { notStored, code } = account();
      if (code === EXIT.ok) logger.info({ reason: why, exitCode: code }, 'everything committed is stored; exiting');
      else logger.error({ reason: why, exitCode: code, notStoredCount: notStored.length, notStored }, 'exiting with outputs not stored');
      if (config.terminationMessagePath !== '') writeTerminationMessage(config.terminationMessagePath, { exitCode: code, reason: why, notStoredCount: notStored.length, notStored: notStored.slice(0, 20) }, logger);
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

/**
 * The exit, where Kubernetes shows it (`kubectl describe pod`: Last State, Message): one JSON line,
 * under the kubelet's 4 KiB limit. Written synchronously: the process exits right after.
 */
function writeTerminationMessage(path: string, exit: Record<string, unknown>, logger: Logger): void {
  try {
    writeFileSync(path, `${JSON.stringify({ ...exit, at: new Date().toISOString() }).slice(0, 4000)}\n`);
  } catch (err) {
    logger.warn({ err, path }, 'could not write the termination message');
  }
}

export const runAgentCommand = command({
  name: 'run',
  usage: 'run [flags]',
  description: `Run the agent: watch the executors' local dirs, write every committed map output back to
the store, serve blocks over gRPC, drain on SIGTERM or a cloud notice. Every flag can also be set
with its SHUFFLE_AGENT_* environment variable; a flag wins over the environment. Logs are JSON
lines on stdout.`,
  options: RUN_OPTIONS,
  env: true,
  exitCodes: [EXIT.ok, EXIT.usage, EXIT.notStored, EXIT.failure],
  run,
});
