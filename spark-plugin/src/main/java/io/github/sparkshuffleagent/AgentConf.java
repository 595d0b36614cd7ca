package io.github.sparkshuffleagent;

import java.util.Optional;

import org.apache.spark.SparkConf;

/**
 * Every configuration key of the plugin, with its default, read in one place. Keys live under
 * {@code spark.shuffleAgent.}; the fallback path is Spark's own key, so Spark's readers and this
 * plugin can never disagree on where the copies are.
 */
public final class AgentConf {
  /** Spark's key for the fallback store; reducers read re-pointed outputs from there. */
  public static final String FALLBACK_PATH = "spark.storage.decommission.fallbackStorage.path";
  /** Master switch: false leaves Spark's behaviour untouched (outputs of a lost executor recomputed). */
  public static final String ENABLED = "spark.shuffleAgent.enabled";
  /** Copies verified at once when an executor is lost. */
  public static final String VERIFY_THREADS = "spark.shuffleAgent.verify.threads";
  /** Time one executor's verification may take; outputs not verified by then are recomputed. */
  public static final String VERIFY_TIMEOUT = "spark.shuffleAgent.verify.timeout";
  /** Largest index object accepted (bytes); Spark's index is 8 bytes per reduce partition, plus 8. */
  public static final String MAX_INDEX_BYTES = "spark.shuffleAgent.verify.maxIndexBytes";
  /** Delete a shuffle's copies when the driver drops the shuffle (ContextCleaner). */
  public static final String CLEANUP_SHUFFLES = "spark.shuffleAgent.cleanup.shuffles";
  /** How often the driver rewrites {@code <path>/<appId>/_heartbeat}, which tells gc the app runs. */
  public static final String HEARTBEAT_INTERVAL = "spark.shuffleAgent.heartbeat.interval";
  /**
   * Longest heartbeat interval accepted. {@code shuffle-agent gc} refuses an age below three times
   * this (30 min), so a running app's heartbeat is always much younger than what gc deletes.
   */
  public static final long MAX_HEARTBEAT_INTERVAL_MS = 10 * 60 * 1000L;

  public final boolean enabled;
  public final Optional<String> fallbackPath;
  public final int verifyThreads;
  public final long verifyTimeoutMs;
  public final long maxIndexBytes;
  public final boolean cleanupShuffles;
  public final long heartbeatIntervalMs;

  // Package-private: tests build one without SparkConf (which needs Spark's logging at hand).
  AgentConf(boolean enabled, Optional<String> fallbackPath, int verifyThreads, long verifyTimeoutMs,
      long maxIndexBytes, boolean cleanupShuffles, long heartbeatIntervalMs) {
    this.enabled = enabled;
    this.fallbackPath = fallbackPath;
    this.verifyThreads = verifyThreads;
    this.verifyTimeoutMs = verifyTimeoutMs;
    this.maxIndexBytes = maxIndexBytes;
    this.cleanupShuffles = cleanupShuffles;
    this.heartbeatIntervalMs = heartbeatIntervalMs;
  }

  /** Reads and validates the keys; a bad value fails the driver at start with the key named. */
  public static AgentConf from(SparkConf conf) {
    int threads = conf.getInt(VERIFY_THREADS, 32);
    if (threads < 1 || threads > 1024) {
      throw new IllegalArgumentException(VERIFY_THREADS + " must be between 1 and 1024, got " + threads);
    }
    long timeoutMs = conf.getTimeAsMs(VERIFY_TIMEOUT, "60s");
    if (timeoutMs < 1) {
      throw new IllegalArgumentException(VERIFY_TIMEOUT + " must be positive, got " + timeoutMs + " ms");
    }
    // 64 MiB: 8 million reduce partitions, far beyond what a shuffle has in practice.
    long maxIndex = conf.getSizeAsBytes(MAX_INDEX_BYTES, "64m");
    if (maxIndex < 8 || maxIndex > Integer.MAX_VALUE - 8) {
      throw new IllegalArgumentException(MAX_INDEX_BYTES + " must be between 8 bytes and 2 GiB, got " + maxIndex);
    }
    long heartbeatMs = conf.getTimeAsMs(HEARTBEAT_INTERVAL, "60s");
    if (heartbeatMs < 1000 || heartbeatMs > MAX_HEARTBEAT_INTERVAL_MS) {
      throw new IllegalArgumentException(HEARTBEAT_INTERVAL + " must be between 1s and 10min, got " + heartbeatMs + " ms");
    }
    String path = conf.get(FALLBACK_PATH, "").trim();
    return new AgentConf(conf.getBoolean(ENABLED, true), path.isEmpty() ? Optional.empty() : Optional.of(path),
        threads, timeoutMs, maxIndex, conf.getBoolean(CLEANUP_SHUFFLES, true), heartbeatMs);
  }
}
