package io.github.sparkshuffleagent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.EOFException;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.net.ConnectException;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.nio.file.AccessDeniedException;
import java.util.ArrayList;
import java.util.List;

import org.junit.jupiter.api.Test;

/** Which store errors are retried, how often, and with what waits. */
class ReadRetryTest {
  private final ReadMetrics metrics = new ReadMetrics();
  private final List<Long> waits = new ArrayList<>();

  private ReadRetry retry(int retries) {
    return new ReadRetry(retries, 100, waits::add, metrics);
  }

  @Test
  void classifiesErrors() {
    // Throttling (S3A raises 503 SlowDown as an IOException subclass), resets, timeouts, cut bodies: transient.
    assertTrue(ReadRetry.isTransient(new IOException("503 SlowDown")));
    assertTrue(ReadRetry.isTransient(new SocketException("Connection reset")));
    assertTrue(ReadRetry.isTransient(new SocketTimeoutException("Read timed out")));
    assertTrue(ReadRetry.isTransient(new ConnectException("Connection refused")));
    assertTrue(ReadRetry.isTransient(new EOFException("premature end")));
    // Missing, refused, or not Spark's format: retrying cannot help.
    assertFalse(ReadRetry.isTransient(new FileNotFoundException("no such key")));
    assertFalse(ReadRetry.isTransient(new AccessDeniedException("403")));
    assertFalse(ReadRetry.isTransient(new ReadRetry.CorruptCopyException("torn index")));
    assertFalse(ReadRetry.isTransient(new RuntimeException("bug")));
  }

  @Test
  void retriesTransientErrorsWithGrowingWaits() throws IOException {
    int[] calls = {0};
    String got = retry(4).run("read x", () -> {
      if (++calls[0] < 4) {
        throw new SocketTimeoutException("timeout " + calls[0]);
      }
      return "bytes";
    });
    assertEquals("bytes", got);
    assertEquals(4, calls[0]);
    assertEquals(4, metrics.requests.getCount());
    assertEquals(3, metrics.retries.getCount());
    assertEquals(3, waits.size());
    // Full jitter within [wait/2, wait], the wait doubling: 100, 200, 400.
    long[] base = {100, 200, 400};
    for (int i = 0; i < 3; i++) {
      assertTrue(waits.get(i) >= base[i] / 2 && waits.get(i) <= base[i], "wait " + i + " was " + waits.get(i));
    }
  }

  @Test
  void givesUpAfterTheRetries() {
    int[] calls = {0};
    SocketException last = assertThrows(SocketException.class, () -> retry(2).run("read x", () -> {
      calls[0]++;
      throw new SocketException("reset");
    }));
    assertEquals(3, calls[0]);
    assertEquals("reset", last.getMessage());
  }

  @Test
  void doesNotRetryPermanentErrors() {
    FileNotFoundException gone = new FileNotFoundException("deleted by a lifecycle rule");
    int[] calls = {0};
    FileNotFoundException e = assertThrows(FileNotFoundException.class, () -> retry(5).run("read x", () -> {
      calls[0]++;
      throw gone;
    }));
    assertSame(gone, e);
    assertEquals(1, calls[0]);
    assertTrue(waits.isEmpty());
  }
}
