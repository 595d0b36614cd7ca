package io.github.sparkshuffleagent;

import java.io.IOException;
import java.util.concurrent.atomic.AtomicReference;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What a task does when a fallback block cannot be read, after the retries: first the driver is
 * told (it unregisters that map output, re-checks the other re-pointed copies, and bumps the map
 * output epoch), then the task fails with Spark's FetchFailedException, so the DAGScheduler
 * resubmits the map stage (which recomputes exactly the unregistered outputs) and then this stage.
 *
 * <p>Whom the FetchFailed blames decides what else Spark throws away: the reading executor would
 * lose its own healthy outputs, the fallback location every re-pointed output. With the driver's
 * answer the blame goes to an id no executor has, which costs nothing more. Without it (no driver
 * plugin, the driver unreachable) the blame goes to the fallback location: coarser, every
 * re-pointed output is recomputed, but the job finishes.
 */
final class ReadFailures {
  private static final Logger LOG = LoggerFactory.getLogger(ReadFailures.class);

  /** Reaches the driver plugin; returns the output's map index, or -1 when it was not at the fallback location. */
  interface Channel {
    int report(int shuffleId, long mapId, String reason) throws Exception;
  }

  private static final AtomicReference<Channel> CHANNEL = new AtomicReference<>();

  private final ReadMetrics metrics;

  ReadFailures(ReadMetrics metrics) {
    this.metrics = metrics;
  }

  /** Set by the executor plugin at start. */
  static void install(Channel channel) {
    CHANNEL.set(channel);
  }

  /**
   * Reports the failure and returns Spark's FetchFailedException to throw (as an unchecked
   * throwable: see {@link Sneaky}). Call on the task's thread: the exception registers itself in
   * the task context there.
   */
  RuntimeException failed(FallbackBlock b, IOException cause) {
    String reason = "fallback copy of shuffle " + b.shuffleId + " map " + b.mapId + " unreadable: " + cause;
    metrics.failuresReported.inc();
    Channel c = CHANNEL.get();
    int mapIndex = -1;
    boolean reported = false;
    if (c != null) {
      try {
        mapIndex = c.report(b.shuffleId, b.mapId, reason);
        reported = true;
      } catch (Exception e) {
        LOG.warn("could not report the failed read of shuffle {} map {} to the driver ({}); blaming the fallback "
            + "location, so every re-pointed output is recomputed", b.shuffleId, b.mapId, e.toString());
      }
    } else {
      LOG.warn("the plugin's executor side is not running (spark.plugins): a failed fallback read blames the fallback "
          + "location, so every re-pointed output is recomputed");
    }
    LOG.error("{}; {}", reason, reported ? "the driver unregistered it, Spark recomputes it" : "not reported", cause);
    return Sneaky.raise(SparkInternals.fetchFailed(b.shuffleId, b.mapId, mapIndex, b.startReduceId, reason, cause,
        !reported));
  }
}
