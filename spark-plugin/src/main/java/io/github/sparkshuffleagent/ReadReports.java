package io.github.sparkshuffleagent;

import java.util.concurrent.atomic.AtomicReference;

import org.apache.spark.api.plugin.PluginContext;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The messages between the executors' read path and the driver plugin, over Spark's plugin RPC
 * ({@code PluginContext.ask}/{@code send}, handled in {@code DriverPlugin.receive}). Messages are
 * plain strings, so that the driver deserialises them whatever class loader holds this jar.
 *
 * <ul>
 *   <li>{@code read-failed <shuffleId> <mapId> <reason>}: asked by a task whose fallback read failed
 *       for good; the driver answers the output's map index (an Integer, -1 when it is no longer at
 *       the fallback location) once it has unregistered it.
 *   <li>{@code read-stats <executorId> <blocks> <bytes> <requests> <retries> <streamed> <failures>}:
 *       the executor's running totals, sent at the end of each task that read fallback blocks.
 * </ul>
 */
final class ReadReports {
  private static final Logger LOG = LoggerFactory.getLogger(ReadReports.class);
  static final String FAILED = "shuffle-agent:read-failed";
  static final String STATS = "shuffle-agent:read-stats";

  /** One executor (one JVM) has one read path; the shuffle manager and the executor plugin share its counters. */
  private static final ReadMetrics METRICS = new ReadMetrics();
  private static final AtomicReference<PluginContext> CONTEXT = new AtomicReference<>();

  private ReadReports() {}

  static ReadMetrics metrics() {
    return METRICS;
  }

  /** The executor plugin started: failures and totals now reach the driver. */
  static void connect(PluginContext ctx) {
    CONTEXT.set(ctx);
    METRICS.register(ctx.metricRegistry());
    ReadFailures.install(ReadReports::askDriver);
  }

  static void disconnect() {
    CONTEXT.set(null);
    ReadFailures.install(null);
  }

  private static int askDriver(int shuffleId, long mapId, String reason) throws Exception {
    PluginContext ctx = CONTEXT.get();
    if (ctx == null) {
      throw new IllegalStateException("executor plugin stopped");
    }
    Object answer = ctx.ask(FAILED + "\t" + shuffleId + "\t" + mapId + "\t" + reason.replace('\t', ' '));
    if (!(answer instanceof Integer)) {
      throw new IllegalStateException("driver plugin answered " + answer);
    }
    return (Integer) answer;
  }

  /** At the end of a task that read fallback blocks: the executor's totals to the driver (best effort). */
  static void taskEnded(ReadMetrics m) {
    PluginContext ctx = CONTEXT.get();
    if (ctx == null) {
      return;
    }
    String msg = STATS + "\t" + ctx.executorID() + "\t" + m.blocks.getCount() + "\t" + m.bytes.getCount() + "\t"
        + m.requests.getCount() + "\t" + m.retries.getCount() + "\t" + m.streamed.getCount() + "\t"
        + m.failuresReported.getCount();
    try {
      ctx.send(msg);
    } catch (java.io.IOException | RuntimeException e) {
      LOG.debug("could not send read totals to the driver", e);
    }
  }
}
