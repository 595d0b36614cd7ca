package io.github.sparkshuffleagent;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.channels.ClosedByInterruptException;
import java.nio.file.AccessDeniedException;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Retries a store read that failed with a transient error, with exponential backoff and jitter.
 *
 * <p>Permanent: the object is not there ({@link FileNotFoundException}, also what S3A raises for a
 * 404), access is refused ({@link AccessDeniedException}, S3A's 401/403), the copy is not Spark's
 * format ({@link CorruptCopyException}), or the thread was interrupted (the task was killed).
 * Everything else an I/O call raises is taken as transient: S3A's throttling (503 SlowDown) and 5xx
 * exceptions, connection resets and refusals, socket and read timeouts, a body cut short. S3A retries
 * some of these itself first; these retries sit on top and cover every file system.
 */
final class ReadRetry {
  /** Thrown when an object does not hold what Spark wrote (torn index, short data). */
  static final class CorruptCopyException extends IOException {
    private static final long serialVersionUID = 1L;

    CorruptCopyException(String message) {
      super(message);
    }
  }

  /** One attempt of a read. */
  interface Attempt<T> {
    T run() throws IOException;
  }

  /** Sleeps between attempts; a seam so that unit tests do not wait. */
  interface Sleeper {
    void sleep(long millis) throws InterruptedException;
  }

  private final int retries;
  private final long firstWaitMs;
  private final Sleeper sleeper;
  private final ReadMetrics metrics;

  ReadRetry(int retries, long firstWaitMs, Sleeper sleeper, ReadMetrics metrics) {
    this.retries = retries;
    this.firstWaitMs = firstWaitMs;
    this.sleeper = sleeper;
    this.metrics = metrics;
  }

  static boolean isTransient(Throwable e) {
    if (e instanceof FileNotFoundException || e instanceof AccessDeniedException || e instanceof CorruptCopyException
        || e instanceof ClosedByInterruptException) {
      return false;
    }
    if (e instanceof InterruptedIOException && Thread.currentThread().isInterrupted()) {
      return false;
    }
    return e instanceof IOException;
  }

  /** Runs {@code attempt}, again after transient failures, at most {@code retries} more times. */
  <T> T run(String what, Attempt<T> attempt) throws IOException {
    long wait = firstWaitMs;
    for (int n = 0;; n++) {
      metrics.requests.inc();
      try {
        return attempt.run();
      } catch (IOException e) {
        if (n >= retries || !isTransient(e)) {
          if (n > 0) {
            e.addSuppressed(new IOException(what + ": gave up after " + (n + 1) + " attempts"));
          }
          throw e;
        }
        metrics.retries.inc();
        try {
          // Full jitter: tasks hitting the same throttled prefix spread out instead of retrying in step.
          sleeper.sleep(wait == 0 ? 0 : ThreadLocalRandom.current().nextLong(wait / 2, wait + 1));
        } catch (InterruptedException ie) {
          Thread.currentThread().interrupt();
          InterruptedIOException io = new InterruptedIOException(what + ": interrupted while waiting to retry");
          io.initCause(e);
          throw io;
        }
        wait = Math.min(wait * 2, 30_000);
      }
    }
  }
}
