package io.github.sparkshuffleagent;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Whole local copies of small data objects: one fetch per object, exact bytes, bounded disk. */
class LocalCopiesTest {
  @TempDir
  Path dir;

  private static byte[] object(long mapId, int len) {
    byte[] b = new byte[len];
    for (int i = 0; i < len; i++) {
      b[i] = (byte) (i * 31 + mapId);
    }
    return b;
  }

  /** Serves {@link #object} and counts the fetches per map id. */
  private static final class Store implements LocalCopies.Fetcher {
    final List<Long> fetches = new ArrayList<>();
    volatile IOException fail;
    volatile int truncateTo = -1;
    volatile CountDownLatch gate;

    @Override
    public InputStream open(int shuffleId, long mapId, long dataLen) throws IOException {
      synchronized (fetches) {
        fetches.add(mapId);
      }
      CountDownLatch g = gate;
      if (g != null) {
        try {
          g.await(10, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
          throw new IOException(e);
        }
      }
      if (fail != null) {
        throw fail;
      }
      byte[] b = object(mapId, (int) dataLen);
      return new ByteArrayInputStream(truncateTo >= 0 ? Arrays.copyOf(b, truncateTo) : b);
    }
  }

  @Test
  void everyBlockOfAnObjectComesFromOneFetchWithItsExactBytes() throws IOException {
    Store store = new Store();
    ReadMetrics metrics = new ReadMetrics();
    LocalCopies copies = new LocalCopies(dir, 1 << 20, store, metrics);
    byte[] whole = object(7, 10_000);
    for (int start = 0; start < 10_000; start += 1_000) {
      assertArrayEquals(Arrays.copyOfRange(whole, start, start + 1_000), copies.read(0, 7, 10_000, start, 1_000));
    }
    assertEquals(List.of(7L), store.fetches);
    assertEquals(1, metrics.localCopies.getCount());
    assertEquals(10_000, copies.bytes());
  }

  @Test
  void concurrentReadersWaitForTheOneFetch() throws Exception {
    Store store = new Store();
    store.gate = new CountDownLatch(1);
    LocalCopies copies = new LocalCopies(dir, 1 << 20, store, new ReadMetrics());
    ExecutorService pool = Executors.newFixedThreadPool(8);
    try {
      List<Future<byte[]>> reads = new ArrayList<>();
      for (int i = 0; i < 8; i++) {
        int start = i * 100;
        reads.add(pool.submit(() -> copies.read(1, 3, 800, start, 100)));
      }
      store.gate.countDown();
      byte[] whole = object(3, 800);
      for (int i = 0; i < 8; i++) {
        assertArrayEquals(Arrays.copyOfRange(whole, i * 100, i * 100 + 100), reads.get(i).get(10, TimeUnit.SECONDS));
      }
      assertEquals(List.of(3L), store.fetches);
    } finally {
      pool.shutdownNow();
    }
  }

  @Test
  void staysWithinItsDiskBoundDeletingTheLeastRecentlyUsed() throws IOException {
    Store store = new Store();
    LocalCopies copies = new LocalCopies(dir, 2_500, store, new ReadMetrics());
    copies.read(0, 1, 1_000, 0, 10);
    copies.read(0, 2, 1_000, 0, 10);
    copies.read(0, 1, 1_000, 0, 10); // 1 is now the most recently used
    copies.read(0, 3, 1_000, 0, 10); // over the bound: 2 goes
    assertEquals(2_000, copies.bytes());
    try (var files = Files.list(dir)) {
      assertEquals(2, files.count());
    }
    copies.read(0, 1, 1_000, 0, 10);
    copies.read(0, 2, 1_000, 0, 10);
    assertEquals(List.of(1L, 2L, 3L, 2L), store.fetches);
  }

  @Test
  void aStoreErrorIsTheStoresAndTheNextReadFetchesAgain() throws IOException {
    Store store = new Store();
    store.fail = new IOException("503 SlowDown");
    LocalCopies copies = new LocalCopies(dir, 1 << 20, store, new ReadMetrics());
    IOException e = assertThrows(IOException.class, () -> copies.read(0, 5, 100, 0, 10));
    assertFalse(e instanceof LocalCopies.LocalDiskException);
    assertEquals("503 SlowDown", e.getMessage());
    store.fail = null;
    assertArrayEquals(Arrays.copyOfRange(object(5, 100), 0, 10), copies.read(0, 5, 100, 0, 10));
    assertEquals(List.of(5L, 5L), store.fetches);
    assertEquals(100, copies.bytes());
  }

  @Test
  void anObjectShorterThanItsIndexSaysIsAnErrorAndLeavesNoFile() throws IOException {
    Store store = new Store();
    store.truncateTo = 60;
    LocalCopies copies = new LocalCopies(dir, 1 << 20, store, new ReadMetrics());
    assertThrows(EOFException.class, () -> copies.read(0, 5, 100, 0, 10));
    try (var files = Files.list(dir)) {
      assertEquals(0, files.count());
    }
    assertEquals(0, copies.bytes());
  }

  @Test
  void aLocalCopyDeletedBeforeItsReadIsFetchedAgain() throws IOException {
    Store store = new Store();
    LocalCopies copies = new LocalCopies(dir, 1 << 20, store, new ReadMetrics());
    copies.read(0, 9, 100, 0, 10);
    try (var files = Files.list(dir)) {
      files.forEach(f -> assertTrue(f.toFile().delete()));
    }
    assertArrayEquals(Arrays.copyOfRange(object(9, 100), 50, 60), copies.read(0, 9, 100, 50, 10));
    assertEquals(List.of(9L, 9L), store.fetches);
  }

  @Test
  void aDiskThatCannotTakeTheCopyIsALocalError() throws IOException {
    Path gone = dir.resolve("gone");
    LocalCopies copies = new LocalCopies(gone, 1 << 20, new Store(), new ReadMetrics());
    assertThrows(LocalCopies.LocalDiskException.class, () -> copies.read(0, 1, 100, 0, 10));
  }

  @Test
  void anUnregisteredShuffleAndAStoppedExecutorLeaveNoFiles() throws IOException {
    Store store = new Store();
    Path sub = Files.createDirectory(dir.resolve("copies"));
    LocalCopies copies = new LocalCopies(sub, 1 << 20, store, new ReadMetrics());
    copies.read(0, 1, 100, 0, 10);
    copies.read(1, 1, 100, 0, 10);
    copies.dropShuffle(0);
    try (var files = Files.list(sub)) {
      assertEquals(1, files.count());
    }
    assertEquals(100, copies.bytes());
    copies.close();
    assertFalse(Files.exists(sub));
    assertThrows(IOException.class, () -> copies.read(1, 1, 100, 0, 10));
  }

  @Test
  void aNewAttemptOfTheSameMapIdWithAnotherLengthIsFetchedAgain() throws IOException {
    AtomicInteger n = new AtomicInteger();
    LocalCopies copies = new LocalCopies(dir, 1 << 20, (s, m, len) -> {
      n.incrementAndGet();
      return new ByteArrayInputStream(object(m, (int) len));
    }, new ReadMetrics());
    copies.read(0, 1, 100, 0, 10);
    assertArrayEquals(Arrays.copyOfRange(object(1, 200), 150, 160), copies.read(0, 1, 200, 150, 10));
    assertEquals(2, n.get());
  }
}
