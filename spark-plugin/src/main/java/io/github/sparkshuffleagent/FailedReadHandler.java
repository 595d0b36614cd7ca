package io.github.sparkshuffleagent;

import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;

import com.codahale.metrics.Counter;
import com.codahale.metrics.Gauge;
import com.codahale.metrics.MetricRegistry;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Driver side of a failed fallback read ({@link ReadReports}): unregisters exactly the map output
 * whose copy could not be read, so Spark's resubmitted map stage recomputes it, re-checks the
 * other outputs at the fallback location once (a copy deleted by a lifecycle rule or {@code gc},
 * or a store gone, rarely takes one copy alone: finding them all now costs one stage retry instead
 * of one per copy, within Spark's {@code spark.stage.maxConsecutiveAttempts}), bumps the map output
 * epoch, and only then answers the task, which fails with a FetchFailed that blames no executor.
 *
 * <p>Runs on Spark's RPC thread for plugin messages, one report at a time; reports that arrive
 * while or shortly after a re-check ran only unregister their own output.
 */
final class FailedReadHandler {
  private static final Logger LOG = LoggerFactory.getLogger(FailedReadHandler.class);
  /** Reports this soon after a re-check finished share its result. */
  private static final long RECHECK_QUIET_NANOS = TimeUnit.SECONDS.toNanos(5);

  private final MapOutputRegistry registry;
  private final LostExecutorRecovery recovery;
  final Counter failuresReported = new Counter();
  final Counter outputsUnregistered = new Counter();
  /** Latest running totals per executor: {blocks, bytes, requests, retries, streamed, failures}. */
  private final Map<String, long[]> totals = new ConcurrentHashMap<>();
  private long lastRecheckEnd = Long.MIN_VALUE;

  FailedReadHandler(MapOutputRegistry registry, LostExecutorRecovery recovery) {
    this.registry = registry;
    this.recovery = recovery;
  }

  void register(MetricRegistry metrics) {
    metrics.register("readFailuresReported", failuresReported);
    metrics.register("outputsUnregisteredAfterFailedRead", outputsUnregistered);
    String[] names = {"fallbackBlocksRead", "fallbackBytesRead", "fallbackRequests", "fallbackRetries",
        "fallbackBlocksStreamed", "fallbackReadFailures"};
    for (int i = 0; i < names.length; i++) {
      int k = i;
      metrics.register(names[i], (Gauge<Long>) () -> total(k));
    }
  }

  /** Sum over executors of one running total. */
  long total(int k) {
    long sum = 0;
    for (long[] t : totals.values()) {
      sum += t[k];
    }
    return sum;
  }

  /** {@code DriverPlugin.receive}: the answer for an ask, null for a send or an unknown message. */
  Object receive(Object message) {
    if (!(message instanceof String)) {
      return null;
    }
    String text = (String) message;
    try {
      if (text.startsWith(ReadReports.FAILED + "\t")) {
        String[] f = text.split("\t", 4);
        if (f.length == 4) {
          return readFailed(Integer.parseInt(f[1]), Long.parseLong(f[2]), f[3], System.nanoTime());
        }
      } else if (text.startsWith(ReadReports.STATS + "\t")) {
        String[] f = text.split("\t");
        stats(f[1], f);
      }
    } catch (NumberFormatException e) {
      LOG.warn("ignoring a malformed plugin message: {}", message);
    }
    return null;
  }

  private void stats(String executorId, String[] f) {
    if (f.length != 8) {
      return;
    }
    long[] now = new long[6];
    for (int i = 0; i < 6; i++) {
      now[i] = Long.parseLong(f[i + 2]);
    }
    // Sends may arrive out of order: totals only grow.
    totals.merge(executorId, now, (a, b) -> {
      long[] m = new long[6];
      for (int i = 0; i < 6; i++) {
        m[i] = Math.max(a[i], b[i]);
      }
      return m;
    });
  }

  synchronized Integer readFailed(int shuffleId, long mapId, String reason, long arrivedNanos) {
    failuresReported.inc();
    MapOutputRef failed = null;
    List<MapOutputRef> atFallback = registry.outputsOn(SparkInternals.FALLBACK_EXECUTOR_ID);
    for (MapOutputRef o : atFallback) {
      if (o.shuffleId() == shuffleId && o.mapId() == mapId) {
        failed = o;
        break;
      }
    }
    if (failed == null) {
      LOG.info("read of shuffle {} map {} failed, and it is no longer at the fallback location: nothing to do ({})",
          shuffleId, mapId, reason);
      return -1;
    }
    registry.unregister(failed);
    outputsUnregistered.inc();
    LOG.warn("{}: unregistered, Spark recomputes it", reason);
    boolean recentlyChecked = lastRecheckEnd != Long.MIN_VALUE
        && (arrivedNanos - lastRecheckEnd < RECHECK_QUIET_NANOS);
    if (recentlyChecked) {
      registry.incrementEpoch();
    } else {
      // Verifies every other output at the fallback location; unregisters those that fail, bumps the epoch.
      RecoveryResult r = recovery.recover(SparkInternals.FALLBACK_EXECUTOR_ID,
          "re-check after a failed read");
      if (r.recomputed() > 0) {
        outputsUnregistered.inc(r.recomputed());
      }
      lastRecheckEnd = System.nanoTime();
    }
    return failed.mapIndex();
  }
}
