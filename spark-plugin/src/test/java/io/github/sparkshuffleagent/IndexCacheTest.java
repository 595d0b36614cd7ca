package io.github.sparkshuffleagent;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.Test;

/** The executor's index cache: one load per output, bounded in bytes, failures not kept. */
class IndexCacheTest {
  private static long[] offsets(int partitions, long mapId) {
    long[] o = new long[partitions + 1];
    for (int i = 1; i <= partitions; i++) {
      o[i] = o[i - 1] + mapId + i;
    }
    return o;
  }

  @Test
  void staysWithinItsBoundDroppingTheLeastRecentlyUsed() throws IOException {
    long entry = IndexCache.sizeOf(offsets(100, 0));
    List<Long> loads = new ArrayList<>();
    IndexCache cache = new IndexCache(3 * entry, (s, m) -> {
      loads.add(m);
      return offsets(100, m);
    });
    for (long m = 0; m < 3; m++) {
      cache.get(0, m);
    }
    cache.get(0, 0); // map 0 is now the most recently used
    cache.get(0, 3); // evicts map 1
    assertEquals(3, cache.size());
    assertTrue(cache.bytes() <= 3 * entry);
    cache.get(0, 0);
    cache.get(0, 2);
    cache.get(0, 3);
    assertEquals(List.of(0L, 1L, 2L, 3L), loads); // all hits
    assertArrayEquals(offsets(100, 1), cache.get(0, 1)); // evicted: loaded again
    assertEquals(5, loads.size());
    for (long m = 0; m < 1000; m++) {
      cache.get(1, m);
      assertTrue(cache.bytes() <= 3 * entry, "bound exceeded at " + m);
    }
  }

  @Test
  void anIndexLargerThanTheCacheIsServedButNotKept() throws IOException {
    IndexCache cache = new IndexCache(100, (s, m) -> offsets(1000, m));
    assertEquals(1001, cache.get(0, 7).length);
    assertEquals(0, cache.size());
    assertEquals(0, cache.bytes());
  }

  @Test
  void concurrentReadersOfOneOutputShareOneLoad() throws Exception {
    AtomicInteger loads = new AtomicInteger();
    CountDownLatch release = new CountDownLatch(1);
    IndexCache cache = new IndexCache(1 << 20, (s, m) -> {
      loads.incrementAndGet();
      try {
        release.await(10, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        throw new IOException(e);
      }
      return offsets(10, m);
    });
    ExecutorService pool = Executors.newFixedThreadPool(8);
    try {
      List<Future<long[]>> got = new ArrayList<>();
      for (int i = 0; i < 8; i++) {
        got.add(pool.submit(() -> cache.get(3, 42)));
      }
      while (loads.get() == 0) {
        Thread.onSpinWait();
      }
      release.countDown();
      for (Future<long[]> f : got) {
        assertArrayEquals(offsets(10, 42), f.get(10, TimeUnit.SECONDS));
      }
      assertEquals(1, loads.get());
    } finally {
      pool.shutdownNow();
    }
  }

  @Test
  void aFailedLoadIsNotKept() throws IOException {
    AtomicInteger loads = new AtomicInteger();
    IndexCache cache = new IndexCache(1 << 20, (s, m) -> {
      if (loads.incrementAndGet() == 1) {
        throw new IOException("503 SlowDown");
      }
      return offsets(4, m);
    });
    assertThrows(IOException.class, () -> cache.get(0, 1));
    assertArrayEquals(offsets(4, 1), cache.get(0, 1));
    assertEquals(2, loads.get());
  }

  @Test
  void droppingAShuffleFreesItsEntries() throws IOException {
    IndexCache cache = new IndexCache(1 << 20, (s, m) -> offsets(4, m));
    cache.get(0, 1);
    cache.get(1, 1);
    cache.dropShuffle(0);
    assertEquals(1, cache.size());
    assertEquals(IndexCache.sizeOf(offsets(4, 1)), cache.bytes());
  }
}
