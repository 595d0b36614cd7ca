package io.github.sparkshuffleagent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import org.apache.hadoop.fs.FileStatus;
import org.apache.spark.scheduler.CompressedMapStatus;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The verifier against copies on a real local Hadoop file system, in Spark's layout and format. */
class CopyVerifierTest {
  private static final String APP = "app-20261202000000-0000";

  @TempDir Path dir;
  private LocalFallbackDir store;
  private CopyVerifier verifier;
  private final ShuffleGuard guard = new ShuffleGuard();

  @BeforeEach
  void setUp() throws IOException {
    store = new LocalFallbackDir(dir, APP);
    verifier = new CopyVerifier(store.fs, store.base, () -> APP, 1 << 20, guard);
  }

  /** Spark's own status for fewer than 2000 reducers (one encoded size per partition). */
  private static MapOutputRef ref(long mapId, long... sizes) {
    return new MapOutputRef(0, 0, mapId, SparkInternals.reportedSizes(new CompressedMapStatus(null, sizes, mapId)), null);
  }

  /** What Spark reports for 2000 reducers and more (empties, huge blocks, one mean for the rest). */
  private static MapOutputRef highlyCompressed(long mapId, long... sizes) {
    return new MapOutputRef(0, 0, mapId, SparkInternals.reportedSizes(new LikeHighlyCompressed(mapId, sizes)), null);
  }

  /**
   * The sizes Spark's HighlyCompressedMapStatus.apply reports (3.5 and 4.x, skew factor off):
   * 0 for empty blocks, the encoded size of blocks at or above spark.shuffle.accurateBlockThreshold
   * (100 MiB), the integer mean of the other non-empty blocks. Spark's own class needs a running
   * SparkEnv (its logging, its network classes) to be built; the real-Spark tests use it.
   */
  private static final class LikeHighlyCompressed extends ExactSizeStatus {
    private static final long ACCURATE_BLOCK_THRESHOLD = 100L << 20;
    private final long mean;

    LikeHighlyCompressed(long mapId, long[] sizes) {
      super(mapId, sizes.clone());
      long sum = 0;
      int n = 0;
      for (long s : sizes) {
        if (s > 0 && s < ACCURATE_BLOCK_THRESHOLD) {
          sum += s;
          n++;
        }
      }
      this.mean = n == 0 ? 0 : sum / n;
    }

    @Override
    public long getSizeForBlock(int reduceId) {
      long s = reduceId < sizes.length ? sizes[reduceId] : 1;
      return s == 0 ? 0 : s >= ACCURATE_BLOCK_THRESHOLD ? SparkInternals.encodedSize(s) : mean;
    }
  }

  private Path object(MapOutputRef o, String name) throws IOException {
    return store.object(name);
  }

  private void store(MapOutputRef o, long... partitionLengths) throws IOException {
    store.store(o, partitionLengths);
  }

  @Test
  void verifiesAWholeCopy() throws IOException {
    MapOutputRef o = ref(7, 10, 0, 30);
    store(o, 10, 0, 30);
    assertEquals(Verdict.OK, verifier.verify(o, null));
    Map<String, FileStatus> listing = verifier.listShuffle(0);
    assertEquals(2, listing.size());
    assertEquals(Verdict.OK, verifier.verify(o, listing));
  }

  @Test
  void verifiesAnEmptyOutputWithoutDataObject() throws IOException {
    MapOutputRef o = ref(8, 0, 0);
    store(o, 0, 0);
    assertEquals(Verdict.OK, verifier.verify(o, null));
  }

  @Test
  void aShuffleDroppedByTheDriverVerifiesNothing() throws IOException, InterruptedException {
    MapOutputRef o = ref(12, 10, 20);
    store(o, 10, 20);
    guard.drop(0);
    assertEquals(Verdict.Kind.MISSING, verifier.verify(o, null).kind());
    assertTrue(verifier.listShuffle(0).isEmpty());
  }

  @Test
  void missingIndexIsMissing() {
    assertEquals(Verdict.Kind.MISSING, verifier.verify(ref(9, 1), null).kind());
  }

  @Test
  void truncatedDataIsInvalid() throws IOException {
    MapOutputRef o = ref(10, 10, 20);
    store(o, 10, 20);
    Path data = object(o, o.dataName());
    Files.write(data, new byte[29]);
    Verdict v = verifier.verify(o, null);
    assertEquals(Verdict.Kind.INVALID, v.kind());
    assertTrue(v.reason().contains("expects 30"), v.reason());
  }

  @Test
  void dataWithoutIndexOffsetsIsInvalid() throws IOException {
    MapOutputRef o = ref(11, 0, 0);
    store(o, 0, 0);
    Files.write(object(o, o.dataName()), new byte[5]); // index says empty, data object is not
    assertEquals(Verdict.Kind.INVALID, verifier.verify(o, null).kind());
  }

  @Test
  void malformedIndexesAreInvalid() throws IOException {
    MapOutputRef o = ref(12, 1);
    Files.write(object(o, o.indexName()), new byte[12]); // not a multiple of 8
    assertEquals(Verdict.Kind.INVALID, verifier.verify(o, null).kind());
    store.writeOffsets(o.indexName(), 0, 20, 10); // decreasing
    Files.write(object(o, o.dataName()), new byte[10]);
    assertTrue(verifier.verify(o, null).reason().contains("decreases"));
  }

  @Test
  void aCopyWhoseEmptyPartitionsDifferFromTheMapStatusIsInvalid() throws IOException {
    MapOutputRef o = ref(13, 10, 0); // Spark: partition 1 empty
    store(o, 5, 5); // copy: partition 1 has bytes
    assertEquals(Verdict.Kind.INVALID, verifier.verify(o, null).kind());
  }

  @Test
  void aCopyWithFewerPartitionsThanTheShuffleIsInvalid() throws IOException {
    // Spark's status for shuffles under 2000 reducers knows the count exactly.
    MapOutputRef o = ref(14, 10, 0, 0);
    store(o, 10, 0); // one partition short
    Verdict v = verifier.verify(o, null);
    assertEquals(Verdict.Kind.INVALID, v.kind());
    assertTrue(v.reason().contains("fewer"), v.reason());
  }

  @Test
  void aCopyWithTheSameEmptyPartitionsButOtherSizesIsInvalid() throws IOException {
    // Issue 17: another app that set the victim's spark.app.id wrote a copy with the same shape.
    MapOutputRef o = ref(15, 1000, 2000, 0, 300);
    store(o, 1300, 1700, 0, 300); // same total, same empty partition
    Verdict v = verifier.verify(o, null);
    assertEquals(Verdict.Kind.INVALID, v.kind());
    assertTrue(v.reason().contains("partition 0 has 1300 bytes"), v.reason());
  }

  @Test
  void sizesWithinTheEncodingOfACompressedStatusVerify() throws IOException {
    // 1000 and 1040 encode to the same byte (ceil(log1.1) = 73): nobody can tell them apart.
    assertEquals(SparkInternals.encodedSize(1000), SparkInternals.encodedSize(1040));
    MapOutputRef o = ref(16, 1000, 7);
    store(o, 1040, 7);
    assertEquals(Verdict.OK, verifier.verify(o, null));
    MapOutputRef p = ref(17, 1000, 7);
    store(p, 1200, 7);
    assertEquals(Verdict.Kind.INVALID, verifier.verify(p, null).kind());
  }

  @Test
  void aHighlyCompressedStatusChecksHugeBlocksAloneAndTheOthersByTheirMean() throws IOException {
    long huge = 150L << 20; // above spark.shuffle.accurateBlockThreshold (100 MiB): kept encoded
    MapOutputRef o = highlyCompressed(18, 100, 200, 300, 0, huge);
    store(o, 100, 200, 300, 0, huge);
    assertEquals(Verdict.OK, verifier.verify(o, null));
    // The mean of the small blocks is all the status knows of them: the same mean verifies.
    MapOutputRef same = highlyCompressed(19, 100, 200, 300, 0, huge);
    store(same, 250, 150, 200, 0, huge);
    assertEquals(Verdict.OK, verifier.verify(same, null));
    // Another mean, a different huge block, or a different empty partition does not.
    MapOutputRef mean = highlyCompressed(20, 100, 200, 300, 0, huge);
    store(mean, 1000, 2000, 3000, 0, huge);
    Verdict v = verifier.verify(mean, null);
    assertEquals(Verdict.Kind.INVALID, v.kind());
    assertTrue(v.reason().contains("average"), v.reason());
    MapOutputRef big = highlyCompressed(21, 100, 200, 300, 0, huge);
    store(big, 100, 200, 300, 0, huge * 2);
    assertEquals(Verdict.Kind.INVALID, verifier.verify(big, null).kind());
    MapOutputRef empty = highlyCompressed(22, 100, 200, 300, 0, huge);
    store(empty, 100, 200, 0, 300, huge);
    assertEquals(Verdict.Kind.INVALID, verifier.verify(empty, null).kind());
  }
}
