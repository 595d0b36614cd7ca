package io.github.sparkshuffleagent;

import java.util.Optional;
import java.util.function.Function;

import org.apache.spark.SparkConf;
import org.apache.spark.network.util.JavaUtils;

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
  /** Bytes of fallback blocks one task holds in memory at once (fetched, not yet consumed). */
  public static final String READ_MAX_BYTES_IN_FLIGHT = "spark.shuffleAgent.read.maxBytesInFlight";
  /** Store requests one task has in flight at once. */
  public static final String READ_MAX_REQUESTS_IN_FLIGHT = "spark.shuffleAgent.read.maxRequestsInFlight";
  /** Extra attempts of a read that failed with a transient error (throttling, reset, timeout). */
  public static final String READ_RETRIES = "spark.shuffleAgent.read.retries";
  /** Wait before the first retry; doubled at each further one. */
  public static final String READ_RETRY_WAIT = "spark.shuffleAgent.read.retryWait";
  /** Bytes of index objects an executor keeps (least recently used dropped first). */
  public static final String READ_INDEX_CACHE_BYTES = "spark.shuffleAgent.read.indexCacheBytes";
  /**
   * Re-point lost executors' outputs even when Spark reads them through its stock FallbackStorage
   * (no {@link AgentShuffleManager}): serial, whole blocks in heap, four requests per block on S3A.
   */
  public static final String REPOINT_WITH_STOCK_READ = "spark.shuffleAgent.repoint.withStockRead";
  /** Spark's key naming the shuffle manager; the plugin's read path is {@link AgentShuffleManager}. */
  public static final String SHUFFLE_MANAGER = "spark.shuffle.manager";
  /**
   * A data object of at most this many bytes is fetched whole, once per executor, onto its local
   * disk, and its blocks read from there (0: every block is its own ranged GET).
   */
  public static final String READ_WHOLE_OBJECT_MAX_BYTES = "spark.shuffleAgent.read.wholeObjectMaxBytes";
  /** Local disk the whole copies of an executor may take (least recently used deleted first). */
  public static final String READ_LOCAL_COPY_BYTES = "spark.shuffleAgent.read.localCopyBytes";
  /** Threads of an executor that wait on store reads (shared by its tasks; each task is capped). */
  public static final String READ_THREADS = "spark.shuffleAgent.read.threads";

  public final boolean enabled;
  public final Optional<String> fallbackPath;
  public final int verifyThreads;
  public final long verifyTimeoutMs;
  public final long maxIndexBytes;
  public final boolean cleanupShuffles;
  public final long heartbeatIntervalMs;
  public final long readMaxBytesInFlight;
  public final int readMaxRequestsInFlight;
  public final int readRetries;
  public final long readRetryWaitMs;
  public final long readIndexCacheBytes;
  public final int readThreads;
  public final long readWholeObjectMaxBytes;
  public final long readLocalCopyBytes;
  /** Whether the executors read fallback blocks through {@link AgentShuffleManager}. */
  public final boolean readPathConfigured;
  public final boolean repointWithStockRead;

  private AgentConf(boolean enabled, Optional<String> fallbackPath, int verifyThreads, long verifyTimeoutMs,
      long maxIndexBytes, boolean cleanupShuffles, long heartbeatIntervalMs, Settings conf) {
    this.enabled = enabled;
    this.fallbackPath = fallbackPath;
    this.verifyThreads = verifyThreads;
    this.verifyTimeoutMs = verifyTimeoutMs;
    this.maxIndexBytes = maxIndexBytes;
    this.cleanupShuffles = cleanupShuffles;
    this.heartbeatIntervalMs = heartbeatIntervalMs;
    // 48 MiB: Spark's own reducer budget (spark.reducer.maxSizeInFlight) is 48m for network fetches,
    // which a 1 GiB executor with a few cores holds comfortably alongside its execution memory.
    this.readMaxBytesInFlight = conf.getSizeAsBytes(READ_MAX_BYTES_IN_FLIGHT, "48m");
    if (readMaxBytesInFlight < 1024 || readMaxBytesInFlight > Integer.MAX_VALUE - 8) {
      throw new IllegalArgumentException(READ_MAX_BYTES_IN_FLIGHT + " must be between 1 KiB and 2 GiB, got "
          + readMaxBytesInFlight);
    }
    this.readMaxRequestsInFlight = conf.getInt(READ_MAX_REQUESTS_IN_FLIGHT, 16);
    if (readMaxRequestsInFlight < 1 || readMaxRequestsInFlight > 1024) {
      throw new IllegalArgumentException(READ_MAX_REQUESTS_IN_FLIGHT + " must be between 1 and 1024, got "
          + readMaxRequestsInFlight);
    }
    this.readRetries = conf.getInt(READ_RETRIES, 4);
    if (readRetries < 0 || readRetries > 100) {
      throw new IllegalArgumentException(READ_RETRIES + " must be between 0 and 100, got " + readRetries);
    }
    this.readRetryWaitMs = conf.getTimeAsMs(READ_RETRY_WAIT, "200ms");
    if (readRetryWaitMs < 0 || readRetryWaitMs > 60_000) {
      throw new IllegalArgumentException(READ_RETRY_WAIT + " must be between 0 and 60s, got " + readRetryWaitMs + " ms");
    }
    this.readIndexCacheBytes = conf.getSizeAsBytes(READ_INDEX_CACHE_BYTES, "32m");
    if (readIndexCacheBytes < 0) {
      throw new IllegalArgumentException(READ_INDEX_CACHE_BYTES + " must not be negative, got " + readIndexCacheBytes);
    }
    this.readPathConfigured = AgentShuffleManager.class.getName().equals(conf.get(SHUFFLE_MANAGER, "sort").trim());
    this.repointWithStockRead = conf.getBoolean(REPOINT_WITH_STOCK_READ, false);
    // 8 MiB: one GET of an object this size costs the time of a few small ranged GETs on S3 (each
    // pays the first byte), while an executor running its share of hundreds of reducers reads
    // many more blocks of each output than that; a larger object is read block by block.
    this.readWholeObjectMaxBytes = conf.getSizeAsBytes(READ_WHOLE_OBJECT_MAX_BYTES, "8m");
    this.readLocalCopyBytes = conf.getSizeAsBytes(READ_LOCAL_COPY_BYTES, "1g");
    if (readWholeObjectMaxBytes < 0 || readWholeObjectMaxBytes > readLocalCopyBytes) {
      throw new IllegalArgumentException(READ_WHOLE_OBJECT_MAX_BYTES + " must be between 0 and "
          + READ_LOCAL_COPY_BYTES + " (" + readLocalCopyBytes + "), got " + readWholeObjectMaxBytes);
    }
    this.readThreads = conf.getInt(READ_THREADS, 64);
    if (readThreads < 1 || readThreads > 4096) {
      throw new IllegalArgumentException(READ_THREADS + " must be between 1 and 4096, got " + readThreads);
    }
  }

  /**
   * The settings as strings, parsed here with Spark's own units ({@code 48m}, {@code 200ms}): the
   * same answers as SparkConf's getters, and testable without a running Spark.
   */
  static final class Settings {
    private final Function<String, String> raw;

    Settings(Function<String, String> raw) {
      this.raw = raw;
    }

    String get(String key, String dflt) {
      String v = raw.apply(key);
      return v == null ? dflt : v;
    }

    int getInt(String key, int dflt) {
      String v = raw.apply(key);
      try {
        return v == null ? dflt : Integer.parseInt(v.trim());
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException(key + " must be an integer, got " + v, e);
      }
    }

    boolean getBoolean(String key, boolean dflt) {
      String v = raw.apply(key);
      return v == null ? dflt : Boolean.parseBoolean(v.trim());
    }

    long getTimeAsMs(String key, String dflt) {
      String v = get(key, dflt);
      try {
        return JavaUtils.timeStringAsMs(v);
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException(key + " must be a duration such as 200ms or 60s, got " + v, e);
      }
    }

    long getSizeAsBytes(String key, String dflt) {
      String v = get(key, dflt);
      try {
        return JavaUtils.byteStringAsBytes(v);
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException(key + " must be a size such as 48m, got " + v, e);
      }
    }
  }

  /** Reads and validates the keys; a bad value fails the driver at start with the key named. */
  public static AgentConf from(SparkConf conf) {
    return from(new Settings(k -> conf.get(k, null)));
  }

  static AgentConf from(Settings conf) {
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
        threads, timeoutMs, maxIndex, conf.getBoolean(CLEANUP_SHUFFLES, true), heartbeatMs, conf);
  }
}
