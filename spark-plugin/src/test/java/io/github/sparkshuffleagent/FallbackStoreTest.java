package io.github.sparkshuffleagent;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.ByteArrayOutputStream;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The executor's store reads on a real local Hadoop file system, in Spark's layout and format. */
class FallbackStoreTest {
  private static final String APP = "app-20261206000000-0000";

  @TempDir Path dir;
  private LocalFallbackDir copies;
  private FallbackStore store;
  private final ReadMetrics metrics = new ReadMetrics();

  @BeforeEach
  void setUp() throws IOException {
    copies = new LocalFallbackDir(dir, APP);
    store = new FallbackStore(copies.fs, copies.base, APP, new ReadRetry(2, 0, ms -> {}, metrics), 1 << 20);
  }

  private Path object(String name) throws IOException {
    return copies.object(name);
  }

  /** Stores an output as Spark's IndexShuffleBlockResolver writes it; returns the data bytes. */
  private byte[] store(long mapId, int... partitionLengths) throws IOException {
    int total = Arrays.stream(partitionLengths).sum();
    byte[] data = new byte[total];
    new Random(mapId).nextBytes(data);
    copies.writeIndex(FallbackStore.indexName(0, mapId), Arrays.stream(partitionLengths).asLongStream().toArray());
    Files.write(object(FallbackStore.dataName(0, mapId)), data);
    return data;
  }

  @Test
  void readsTheIndexAndExactlyOneBlock() throws IOException {
    byte[] data = store(5, 100, 0, 300, 50);
    long[] offsets = store.readIndex(0, 5, 0);
    assertArrayEquals(new long[] {0, 100, 100, 400, 450}, offsets);
    byte[] block = store.readRange(0, 5, 450, offsets[2], (int) (offsets[3] - offsets[2]));
    assertArrayEquals(Arrays.copyOfRange(data, 100, 400), block);
    // A batch of partitions [1, 4) is one range as well.
    assertArrayEquals(Arrays.copyOfRange(data, 100, 450), store.readRange(0, 5, 450, offsets[1], 350));
    assertEquals(3, metrics.requests.getCount());
  }

  @Test
  void readsAnIndexOfKnownLengthAndRefusesOneTooShort() throws IOException {
    store(10, 100, 0, 300, 50);
    assertArrayEquals(new long[] {0, 100, 100, 400, 450}, store.readIndex(0, 10, 5 * 8));
    assertEquals(1, metrics.requests.getCount());
    // The reader's shuffle has 6 reduce partitions; this copy's index holds 4: not its output, and
    // not a transient error (no retry).
    ReadRetry.CorruptCopyException e = assertThrows(ReadRetry.CorruptCopyException.class, () -> store.readIndex(0, 10, 7 * 8));
    assertEquals(2, metrics.requests.getCount(), e.getMessage());
    assertThrows(FileNotFoundException.class, () -> store.readIndex(0, 98, 5 * 8));
    assertThrows(ReadRetry.CorruptCopyException.class, () -> store.readIndex(0, 10, (1 << 20) + 8));
  }

  @Test
  void streamsARangeWithoutReadingPastIt() throws IOException {
    byte[] data = store(6, 1000, 3 << 20, 1000);
    try (InputStream in = store.openRange(0, 6, data.length, 1000, 3 << 20)) {
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      byte[] buf = new byte[7919];
      for (int n; (n = in.read(buf)) >= 0;) {
        out.write(buf, 0, n);
      }
      assertArrayEquals(Arrays.copyOfRange(data, 1000, 1000 + (3 << 20)), out.toByteArray());
      assertEquals(-1, in.read());
    }
  }

  @Test
  void aMissingCopyIsAPermanentError() {
    assertThrows(FileNotFoundException.class, () -> store.readIndex(0, 99, 0));
    // Not retried: one request.
    assertEquals(1, metrics.requests.getCount());
  }

  @Test
  void aTornIndexIsRefused() throws IOException {
    Files.write(object(FallbackStore.indexName(0, 7)), new byte[12]);
    assertThrows(ReadRetry.CorruptCopyException.class, () -> store.readIndex(0, 7, 0));
    copies.writeOffsets(FallbackStore.indexName(0, 8), 0, 10, 5); // decreasing
    assertThrows(ReadRetry.CorruptCopyException.class, () -> store.readIndex(0, 8, 0));
  }

  @Test
  void aDataObjectShorterThanItsIndexFailsTheRead() throws IOException {
    store(9, 100, 100);
    Files.write(object(FallbackStore.dataName(0, 9)), new byte[150]);
    assertThrows(IOException.class, () -> store.readRange(0, 9, 200, 100, 100));
  }
}
