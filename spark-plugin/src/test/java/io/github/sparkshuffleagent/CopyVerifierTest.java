package io.github.sparkshuffleagent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.DataOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.spark.scheduler.CompressedMapStatus;
import org.apache.spark.scheduler.MapStatus;
import org.apache.spark.storage.BlockManagerId;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The verifier against copies on a real local Hadoop file system, in Spark's layout and format. */
class CopyVerifierTest {
  private static final String APP = "app-20261202000000-0000";

  /**
   * A map status with exact sizes. Spark's own implementations need a running Spark (its logging
   * and shaded libraries); the verifier only asks for sizes.
   */
  private static final class Sizes implements MapStatus {
    private final long mapId;
    private final long[] sizes;

    Sizes(long mapId, long[] sizes) {
      this.mapId = mapId;
      this.sizes = sizes;
    }

    @Override
    public long mapId() {
      return mapId;
    }

    @Override
    public BlockManagerId location() {
      return null;
    }

    @Override
    public void updateLocation(BlockManagerId id) {
      throw new UnsupportedOperationException();
    }

    @Override
    public long getSizeForBlock(int reduceId) {
      return sizes[reduceId];
    }
  }

  @TempDir Path dir;
  private CopyVerifier verifier;
  private final ShuffleGuard guard = new ShuffleGuard();

  @BeforeEach
  void setUp() throws IOException {
    org.apache.hadoop.fs.Path base = new org.apache.hadoop.fs.Path(dir.toUri());
    FileSystem fs = base.getFileSystem(new Configuration());
    verifier = new CopyVerifier(fs, base, () -> APP, 1 << 20, guard);
  }

  private static MapOutputRef ref(long mapId, long... sizes) {
    return new MapOutputRef(0, 0, mapId, null, new Sizes(mapId, sizes));
  }

  private Path object(MapOutputRef o, String name) throws IOException {
    Path p = dir.resolve(APP).resolve("0").resolve(Integer.toString(CopyVerifier.nonNegativeHash(name))).resolve(name);
    Files.createDirectories(p.getParent());
    return p;
  }

  /** Writes the copy Spark's IndexShuffleBlockResolver would: offsets, and data unless empty. */
  private void store(MapOutputRef o, long... partitionLengths) throws IOException {
    long total = 0;
    try (OutputStream f = Files.newOutputStream(object(o, o.indexName())); DataOutputStream out = new DataOutputStream(f)) {
      out.writeLong(0);
      for (long len : partitionLengths) {
        total += len;
        out.writeLong(total);
      }
    }
    if (total > 0) {
      Files.write(object(o, o.dataName()), new byte[(int) total]);
    }
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
    try (DataOutputStream out = new DataOutputStream(Files.newOutputStream(object(o, o.indexName())))) {
      out.writeLong(0);
      out.writeLong(20);
      out.writeLong(10); // decreasing
    }
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
    MapOutputRef o = new MapOutputRef(0, 0, 14, null, new CompressedMapStatus(null, new long[] {10, 0, 0}, 14));
    store(o, 10, 0); // one partition short
    Verdict v = verifier.verify(o, null);
    assertEquals(Verdict.Kind.INVALID, v.kind());
    assertTrue(v.reason().contains("fewer"), v.reason());
  }
}
