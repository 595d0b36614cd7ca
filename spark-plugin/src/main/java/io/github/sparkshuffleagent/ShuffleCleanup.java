package io.github.sparkshuffleagent;

import java.io.IOException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.IntFunction;

import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Deletes a shuffle's copies ({@code <path>/<appId>/<shuffleId>/}) once the driver dropped the
 * shuffle ({@code ShuffleDriverComponents.removeShuffle}: the ContextCleaner calls it when the
 * shuffle's dependency was garbage collected, so no job can read the shuffle any more, and Spark
 * unregisters its map outputs right after). Deletes run one at a time on their own thread, through
 * Spark's Hadoop file system for the fallback path; a failure is logged, never thrown into Spark.
 *
 * <p>Spark creates the shuffle IO's driver components and the plugin separately, with no handle
 * between them; one SparkContext runs per driver JVM, so the running instance is process-wide
 * (as {@link PluginGate} is).
 */
final class ShuffleCleanup implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(ShuffleCleanup.class);
  private static final AtomicReference<ShuffleCleanup> ACTIVE = new AtomicReference<>();
  /**
   * How long stopping the app waits for deletes already queued; the rest is left to gc. Short: a
   * store that hangs or refuses deletes must not hold the app's stop.
   */
  private static final long CLOSE_WAIT_MS = 2_000;

  private final FileSystem fs;
  private final IntFunction<Path> shuffleDir;
  private final ShuffleGuard guard;
  private final ExecutorService thread = Executors.newSingleThreadExecutor(Threads.daemon("shuffle-agent-cleanup"));

  private ShuffleCleanup(FileSystem fs, IntFunction<Path> shuffleDir, ShuffleGuard guard) {
    this.fs = fs;
    this.shuffleDir = shuffleDir;
    this.guard = guard;
  }

  /** Starts deleting dropped shuffles' copies; {@link #close()} stops it. */
  static ShuffleCleanup start(FileSystem fs, IntFunction<Path> shuffleDir, ShuffleGuard guard) {
    ShuffleCleanup c = new ShuffleCleanup(fs, shuffleDir, guard);
    ACTIVE.set(c);
    return c;
  }

  /** From the driver components: queues the delete when the plugin runs with cleanup on. */
  static void shuffleRemoved(int shuffleId) {
    ShuffleCleanup c = ACTIVE.get();
    if (c != null) {
      c.queue(shuffleId);
    }
  }

  private void queue(int shuffleId) {
    try {
      thread.execute(() -> delete(shuffleId));
    } catch (RejectedExecutionException e) {
      LOG.debug("shuffle {} dropped while the app stops: its copies are left to the app's cleanup or gc", shuffleId);
    }
  }

  private void delete(int shuffleId) {
    Path dir = shuffleDir.apply(shuffleId);
    try {
      guard.drop(shuffleId);
      long start = System.nanoTime();
      // false means nothing was there: no output of the shuffle was stored.
      boolean deleted = fs.delete(dir, true);
      LOG.info("shuffle {} dropped by the driver: {} its copies in {} ({} ms)", shuffleId,
          deleted ? "deleted" : "no", dir, TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (IOException | RuntimeException e) {
      LOG.error("shuffle {} dropped by the driver: deleting its copies in {} failed; they stay until the app's "
          + "cleanup or shuffle-agent gc", shuffleId, dir, e);
    }
  }

  /** Lets queued deletes finish for a short while (the app is stopping), then drops the rest. */
  @Override
  public void close() {
    ACTIVE.compareAndSet(this, null);
    Threads.shutdownWithin(thread, CLOSE_WAIT_MS);
  }
}
