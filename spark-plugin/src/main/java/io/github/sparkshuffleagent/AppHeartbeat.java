package io.github.sparkshuffleagent;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Rewrites {@code <path>/<appId>/_heartbeat} every {@link AgentConf#HEARTBEAT_INTERVAL} while the
 * driver runs, so the app's newest object is never older than the interval and
 * {@code shuffle-agent gc} (which deletes app prefixes whose newest object is older than its
 * {@code --older-than}, at least three times the longest interval) leaves the app alone. A driver
 * that dies without stopping stops refreshing it, and its prefix becomes gc's to delete.
 *
 * <p>The name is outside Spark's file names ({@code shuffle_*}), so neither Spark's fallback
 * reader, the plugin's verification (which lists shuffle prefixes only) nor the agent's listings
 * take it for an output.
 */
final class AppHeartbeat implements AutoCloseable {
  private static final Logger LOG = LoggerFactory.getLogger(AppHeartbeat.class);
  static final String NAME = "_heartbeat";
  /**
   * A write in flight when the app stops should land before Spark's own app-end cleanup deletes the
   * prefix; a store that hangs or refuses (S3A retries a refused PUT for minutes) must not hold the
   * app's stop longer than this. An interrupted beat costs nothing: gc reads the heartbeat's age.
   */
  private static final long CLOSE_WAIT_MS = 2_000;

  private final FileSystem fs;
  private final Path base;
  private final long intervalMs;
  private final ScheduledExecutorService thread = Executors.newSingleThreadScheduledExecutor(Threads.daemon("shuffle-agent-heartbeat"));
  private volatile boolean failing;

  AppHeartbeat(FileSystem fs, Path base, long intervalMs) {
    this.fs = fs;
    this.base = base;
    this.intervalMs = intervalMs;
  }

  /**
   * Writes the first heartbeat now (before any executor can commit an output), then every
   * interval. Called once the app id is known, which is after the plugins' init.
   */
  void start(String appId) {
    Path path = new Path(new Path(base, appId), NAME);
    thread.scheduleWithFixedDelay(() -> beat(path), 0, intervalMs, TimeUnit.MILLISECONDS);
  }

  private void beat(Path path) {
    String body = "{\"updated\":\"" + Instant.now() + "\",\"intervalMs\":" + intervalMs + "}\n";
    try (FSDataOutputStream out = fs.create(path, true)) {
      out.write(body.getBytes(StandardCharsets.UTF_8));
      if (failing) {
        failing = false;
        LOG.info("heartbeat {} written again", path);
      }
    } catch (IOException | RuntimeException e) {
      // Each failed beat is logged: if this lasts longer than gc's --older-than, gc takes the app for dead.
      failing = true;
      LOG.error("could not write the heartbeat {}; shuffle-agent gc may take this app for dead if it stays unwritten",
          path, e);
    }
  }

  @Override
  public void close() {
    Threads.shutdownWithin(thread, CLOSE_WAIT_MS);
  }
}
