package io.github.sparkshuffleagent;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** One task's blocks fetched ahead within its byte budget and request cap, in consumption order. */
class TaskReadsTest {
  private final ExecutorService pool = Executors.newFixedThreadPool(32);
  private final AtomicInteger inFlight = new AtomicInteger();
  private final AtomicInteger peakInFlight = new AtomicInteger();
  private final List<Long> fetchOrder = new ArrayList<>();
  private final ConcurrentHashMap<Long, Boolean> opened = new ConcurrentHashMap<>();
  /** Fetches wait here until the test lets them finish. */
  private final Semaphore gate = new Semaphore(0);

  private final FallbackBlock.Source source = new FallbackBlock.Source() {
    @Override
    public byte[] read(FallbackBlock b) throws IOException {
      int now = inFlight.incrementAndGet();
      peakInFlight.accumulateAndGet(now, Math::max);
      synchronized (fetchOrder) {
        fetchOrder.add(b.mapId);
      }
      try {
        if (!gate.tryAcquire(10, TimeUnit.SECONDS)) {
          throw new IOException("gate never opened");
        }
      } catch (InterruptedException e) {
        throw new IOException(e);
      } finally {
        inFlight.decrementAndGet();
      }
      return content(b);
    }

    @Override
    public InputStream open(FallbackBlock b) {
      opened.put(b.mapId, true);
      return new ByteArrayInputStream(content(b));
    }
  };

  private static byte[] content(FallbackBlock b) {
    byte[] c = new byte[(int) b.size()];
    java.util.Arrays.fill(c, (byte) b.mapId);
    return c;
  }

  @AfterEach
  void tearDown() {
    pool.shutdownNow();
  }

  private FallbackBlock block(TaskReads t, long mapId, long size, long budget) {
    FallbackBlock b = new FallbackBlock(0, mapId, 0, 1, size, size > budget, source, t, new ReadFailures(new ReadMetrics()));
    t.add(b);
    return b;
  }

  private Set<Long> fetched() {
    synchronized (fetchOrder) {
      return new HashSet<>(fetchOrder);
    }
  }

  private static byte[] readAll(FallbackBlock b) throws IOException {
    try (InputStream in = b.createInputStream()) {
      return in.readAllBytes();
    }
  }

  @Test
  void holdsNoMoreThanTheBudgetAndStartsTheNextWhenOneIsConsumed() throws Exception {
    long budget = 1000;
    TaskReads t = new TaskReads(budget, 16, pool);
    List<FallbackBlock> blocks = new ArrayList<>();
    for (int i = 0; i < 10; i++) {
      blocks.add(block(t, i, 300, budget));
    }
    // 3 x 300 fit in 1000; the fourth waits.
    waitFor(() -> inFlight.get() == 3);
    assertEquals(900, t.bytesHeld());
    // The first three in the order Spark consumes them (they run at once, so in any order).
    assertEquals(Set.of(0L, 1L, 2L), fetched());
    gate.release(100);
    for (int i = 0; i < 10; i++) {
      assertArrayEquals(content(blocks.get(i)), readAll(blocks.get(i)));
      assertTrue(t.bytesHeld() <= budget, "held " + t.bytesHeld());
    }
    assertEquals(0, t.bytesHeld());
    assertTrue(t.peakBytesHeld() <= budget);
    assertEquals(10, fetchOrder.size());
  }

  @Test
  void capsRequestsInFlight() throws Exception {
    TaskReads t = new TaskReads(1 << 30, 4, pool);
    List<FallbackBlock> blocks = new ArrayList<>();
    for (int i = 0; i < 20; i++) {
      blocks.add(block(t, i, 10, 1 << 30));
    }
    waitFor(() -> inFlight.get() == 4);
    gate.release(1000);
    for (FallbackBlock b : blocks) {
      readAll(b);
    }
    assertEquals(4, peakInFlight.get());
  }

  @Test
  void streamsABlockOverTheBudgetInsteadOfHoldingIt() throws Exception {
    long budget = 1000;
    TaskReads t = new TaskReads(budget, 16, pool);
    FallbackBlock small = block(t, 1, 100, budget);
    FallbackBlock big = block(t, 2, 5000, budget);
    FallbackBlock after = block(t, 3, 100, budget);
    waitFor(() -> inFlight.get() == 2);
    assertEquals(200, t.bytesHeld()); // the big block is not fetched ahead
    gate.release(10);
    readAll(small);
    assertEquals(null, opened.get(2L));
    assertArrayEquals(content(big), readAll(big));
    assertEquals(Boolean.TRUE, opened.get(2L));
    readAll(after);
    assertEquals(Set.of(1L, 3L), fetched());
  }

  @Test
  void aBlockTheReaderWaitsForStartsEvenWhenAStreamLeftOpenHoldsTheBudget() throws Exception {
    TaskReads t = new TaskReads(1000, 16, pool);
    FallbackBlock first = block(t, 1, 800, 1000);
    FallbackBlock second = block(t, 2, 800, 1000);
    gate.release(10);
    InputStream left = first.createInputStream();
    left.read(); // read, never closed: its 800 bytes stay in the budget
    assertEquals(List.of(1L), fetchOrder);
    assertArrayEquals(content(second), readAll(second));
    left.close();
  }

  @Test
  void aBlockThatFailedBeforeItsSizeWasKnownIsNotEmpty() {
    // Spark's reader fails a zero-size block itself and blames the reading executor.
    FallbackBlock b = FallbackBlock.failed(0, 1, 0, 1, new IOException("index gone"), new ReadFailures(new ReadMetrics()));
    assertTrue(b.size() > 0);
  }

  @Test
  void theEndOfTheTaskDropsEverything() throws Exception {
    TaskReads t = new TaskReads(1000, 16, pool);
    for (int i = 0; i < 10; i++) {
      block(t, i, 300, 1000);
    }
    waitFor(() -> inFlight.get() == 3);
    t.close();
    assertEquals(0, t.bytesHeld());
    gate.release(100);
    // The three fetches finish; nothing more is started after the end of the task.
    pool.shutdown();
    assertTrue(pool.awaitTermination(10, TimeUnit.SECONDS));
    assertEquals(3, fetchOrder.size());
  }

  private static void waitFor(java.util.function.BooleanSupplier cond) throws InterruptedException {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
    while (!cond.getAsBoolean()) {
      if (System.nanoTime() > deadline) {
        throw new AssertionError("condition not reached");
      }
      Thread.sleep(1);
    }
  }
}
