package io.github.sparkshuffleagent;

import org.apache.spark.scheduler.MapStatus;
import org.apache.spark.storage.BlockManagerId;

/**
 * One registered map output as the driver's tracker held it when the executor was lost.
 *
 * @param shuffleId the shuffle
 * @param mapIndex the map partition (index into the shuffle's statuses)
 * @param mapId the map task's id, the {@code M} of {@code shuffle_S_M_0.index}
 * @param location where the tracker points reducers (the lost executor)
 * @param status the tracker's own status object: its block sizes cross-check the copy, and its
 *     identity proves the tracker still holds this very output when the plugin acts
 */
final class MapOutputRef {
  private final int shuffleId;
  private final int mapIndex;
  private final long mapId;
  private final BlockManagerId location;
  private final MapStatus status;

  MapOutputRef(int shuffleId, int mapIndex, long mapId, BlockManagerId location, MapStatus status) {
    this.shuffleId = shuffleId;
    this.mapIndex = mapIndex;
    this.mapId = mapId;
    this.location = location;
    this.status = status;
  }

  int shuffleId() {
    return shuffleId;
  }

  int mapIndex() {
    return mapIndex;
  }

  long mapId() {
    return mapId;
  }

  BlockManagerId location() {
    return location;
  }

  MapStatus status() {
    return status;
  }

  String indexName() {
    return "shuffle_" + shuffleId + "_" + mapId + "_0.index";
  }

  String dataName() {
    return "shuffle_" + shuffleId + "_" + mapId + "_0.data";
  }
}
