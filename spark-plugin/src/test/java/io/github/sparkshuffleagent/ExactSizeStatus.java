package io.github.sparkshuffleagent;

import org.apache.spark.scheduler.MapStatus;
import org.apache.spark.storage.BlockManagerId;

/**
 * A map status with exact sizes, for tests of driver-side pieces that only ask a status for its
 * sizes (Spark's own statuses need a running Spark). A subclass reports its sizes otherwise.
 */
class ExactSizeStatus implements MapStatus {
  private final long mapId;
  /** The blocks' real sizes. */
  protected final long[] sizes;

  ExactSizeStatus(long mapId, long... sizes) {
    this.mapId = mapId;
    this.sizes = sizes;
  }

  /**
   * An output of shuffle 0 as a fake registry lists it: these sizes as SparkInternals reports
   * them, and a handle of its own (a fake registry compares handles by identity, as the tracker
   * compares statuses).
   */
  static MapOutputRef ref(int mapIndex, long mapId, long... sizes) {
    return new MapOutputRef(0, mapIndex, mapId, SparkInternals.reportedSizes(new ExactSizeStatus(mapId, sizes)),
        new MapOutputRegistry.Handle() {});
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

  @Override
  public long mapId() {
    return mapId;
  }
}
