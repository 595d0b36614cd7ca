package io.github.sparkshuffleagent;

import java.util.ArrayList;
import java.util.List;

import org.apache.spark.MapOutputTracker;
import org.apache.spark.MapOutputTrackerMaster;
import org.apache.spark.ShuffleStatus;
import org.apache.spark.SparkEnv;
import org.apache.spark.scheduler.CompressedMapStatus;
import org.apache.spark.scheduler.MapStatus;
import org.apache.spark.scheduler.MapStatus$;
import org.apache.spark.storage.BlockManagerId;
import org.apache.spark.storage.FallbackStorage;

import scala.Option;

/**
 * The only class that touches Spark's internal (private[spark], public in bytecode) APIs: the
 * driver's MapOutputTrackerMaster and FallbackStorage's block manager id. Each call used here has
 * the same Java signature on Spark 3.5 (Scala 2.12) and 4.1 (Scala 2.13); the real-Spark tests
 * run this jar on both. A new Spark line that changes them changes this file only.
 */
final class SparkInternals implements MapOutputRegistry {
  private final MapOutputTrackerMaster tracker;
  private final BlockManagerId fallbackId;

  /** Package-private for RepointBench, which times recovery against a tracker of its own. */
  SparkInternals(MapOutputTrackerMaster tracker, BlockManagerId fallbackId) {
    this.tracker = tracker;
    this.fallbackId = fallbackId;
  }

  /** The driver's tracker; fails (and the plugin stays off) anywhere else or on an unknown Spark. */
  static SparkInternals forDriver() {
    SparkEnv env = SparkEnv.get();
    if (env == null) {
      throw new IllegalStateException("no SparkEnv: the plugin runs on the driver only");
    }
    MapOutputTracker t = env.mapOutputTracker();
    if (!(t instanceof MapOutputTrackerMaster)) {
      throw new IllegalStateException("map output tracker is " + t.getClass().getName() + ", not the driver's");
    }
    return new SparkInternals((MapOutputTrackerMaster) t, FallbackStorage.FALLBACK_BLOCK_MANAGER_ID());
  }

  BlockManagerId fallbackId() {
    return fallbackId;
  }

  @Override
  public List<MapOutputRef> outputsOn(String executorId) {
    List<MapOutputRef> out = new ArrayList<>();
    scala.collection.Iterator<Object> ids = tracker.shuffleStatuses().keysIterator();
    while (ids.hasNext()) {
      int shuffleId = (Integer) ids.next();
      Option<ShuffleStatus> status = tracker.shuffleStatuses().get(shuffleId);
      if (status.isEmpty()) {
        continue; // unregistered meanwhile
      }
      // A read without the status's lock: the array's slots are single references, and every
      // action re-checks under Spark's own lock (updateMapOutput, unregisterMapOutput).
      MapStatus[] statuses = status.get().mapStatuses();
      for (int i = 0; i < statuses.length; i++) {
        MapStatus s = statuses[i];
        if (s != null && executorId.equals(s.location().executorId())) {
          out.add(new MapOutputRef(shuffleId, i, s.mapId(), s.location(), s));
        }
      }
    }
    return out;
  }

  @Override
  public int mapCount(int shuffleId) {
    Option<ShuffleStatus> status = tracker.shuffleStatuses().get(shuffleId);
    return status.isEmpty() ? 0 : status.get().mapStatuses().length;
  }

  @Override
  public boolean repointToFallback(MapOutputRef output) {
    Option<ShuffleStatus> status = tracker.shuffleStatuses().get(output.shuffleId());
    if (status.isEmpty()) {
      return false;
    }
    MapStatus[] statuses = status.get().mapStatuses();
    // Spark's updateMapOutput moves whatever status sits at the map id's index; a newer attempt of
    // that partition must never be moved to a copy of the old one.
    MapStatus current = output.mapIndex() < statuses.length ? statuses[output.mapIndex()] : null;
    if (current != output.status() || !output.location().equals(current.location())) {
      return false;
    }
    tracker.updateMapOutput(output.shuffleId(), output.mapId(), fallbackId);
    return true;
  }

  @Override
  public void unregister(MapOutputRef output) {
    tracker.unregisterMapOutput(output.shuffleId(), output.mapIndex(), output.location());
  }

  @Override
  public void incrementEpoch() {
    tracker.incrementEpoch();
  }

  @Override
  public void unregisterAllOn(String executorId) {
    tracker.removeOutputsOnExecutor(executorId);
  }

  /**
   * Whether a status knows its number of reduce partitions exactly: Spark's CompressedMapStatus
   * (fewer than spark.shuffle.minNumPartitionsToHighlyCompress reducers) holds one size per
   * reducer, and asking past the last throws.
   */
  static boolean hasExactPartitionCount(MapStatus status) {
    return status instanceof CompressedMapStatus;
  }

  /**
   * The size a map status reports for a block of {@code size} bytes in its one-byte encoding:
   * Spark's own {@code MapStatus.compressSize} then {@code decompressSize} (the same Java
   * signatures on 3.5 and 4.x), so the comparison is exact whatever rounding Spark does.
   */
  static long encodedSize(long size) {
    return MapStatus$.MODULE$.decompressSize(MapStatus$.MODULE$.compressSize(size));
  }

  /** Next-to-last check of the partition count: true when reduce id {@code p} exists in the status. */
  static boolean hasPartition(MapStatus status, int p) {
    try {
      status.getSizeForBlock(p);
      return true;
    } catch (ArrayIndexOutOfBoundsException e) {
      return false;
    }
  }
}
