package io.github.sparkshuffleagent;

import java.util.ArrayList;
import java.util.List;

/**
 * Whether a copy's partition lengths are the ones the driver's {@code MapStatus} describes, as
 * closely as Spark's size encoding lets anyone tell. A copy written by someone else (another app
 * that set the same {@code spark.app.id}, a stale attempt) must not be re-pointed even when its
 * empty partitions happen to match.
 *
 * <p>What each encoding keeps (Spark 3.5 and 4.x, {@code MapStatus.scala}):
 * <ul>
 *   <li>{@code CompressedMapStatus} (up to {@code spark.shuffle.minNumPartitionsToHighlyCompress},
 *   2000, reducers): one byte per partition, {@code compressSize} = ceil(log1.1(size)), read back
 *   as 1.1^byte. A copy's length must encode to the very same byte: within about 10 %.
 *   <li>{@code HighlyCompressedMapStatus}: empty partitions exactly (a bitmap); blocks at or above
 *   the accurate-block threshold (and, with the skew factor, the skewed ones) as one such byte
 *   each; every other non-empty block as one number, the integer mean of those blocks. A partition
 *   reported as that mean cannot be checked alone: their lengths' integer mean must equal it.
 * </ul>
 * Zero is exact in both: Spark relies on it (a reducer skips blocks of size 0).
 */
final class MapStatusSizes {
  private MapStatusSizes() {}

  /**
   * Null when the copy's partition lengths fit the status's reported sizes, else the reason they
   * do not. The status has every partition of {@code lengths} (CopyVerifier checks that first).
   */
  static String mismatch(ReportedSizes status, long[] lengths) {
    boolean exactPerPartition = status.exactPerPartition();
    long[] reported = new long[lengths.length];
    List<Integer> averaged = new ArrayList<>();
    for (int p = 0; p < lengths.length; p++) {
      long copy = lengths[p];
      long spark = status.sizeOf(p);
      reported[p] = spark;
      if (copy == 0 || spark == 0) {
        if (copy != spark) {
          return "partition " + p + (copy == 0 ? " is empty" : " is not empty") + ", unlike the map status";
        }
        continue;
      }
      if (SparkInternals.encodedSize(copy) == spark) {
        continue;
      }
      if (exactPerPartition) {
        return "partition " + p + " has " + copy + " bytes; the map status says about " + spark
            + " (Spark's size encoding keeps sizes within 10 %)";
      }
      averaged.add(p);
    }
    if (averaged.isEmpty()) {
      return null;
    }
    long mean = reported[averaged.get(0)];
    long sum = 0;
    for (int p : averaged) {
      if (reported[p] != mean) {
        return "partition " + p + " has " + lengths[p] + " bytes; the map status says about " + reported[p];
      }
      sum += lengths[p];
    }
    if (sum / averaged.size() == mean) {
      return null;
    }
    // A small block whose own length happens to encode to the mean was skipped above: count every
    // partition the status reports at the mean, in case that is what Spark averaged.
    long sumAll = 0;
    int countAll = 0;
    for (int p = 0; p < lengths.length; p++) {
      if (lengths[p] > 0 && reported[p] == mean) {
        sumAll += lengths[p];
        countAll++;
      }
    }
    if (sumAll / countAll == mean) {
      return null;
    }
    return averaged.size() + " partitions average " + (sum / averaged.size()) + " bytes; the map status says "
        + mean;
  }
}
