package io.github.sparkshuffleagent;

/**
 * One registered map output as the driver's tracker held it when the executor was lost.
 *
 * @param shuffleId the shuffle
 * @param mapIndex the map partition (index into the shuffle's statuses)
 * @param mapId the map task's id, the {@code M} of {@code shuffle_S_M_0.index}
 * @param sizes what the tracker's status reports per partition: they cross-check the copy
 * @param handle the registry's own token for the status it listed (SparkInternals: the status and
 *     its location then); handed back to re-point or unregister, it lets the registry act only
 *     if it still holds this very output
 */
final class MapOutputRef {
  private final int shuffleId;
  private final int mapIndex;
  private final long mapId;
  private final ReportedSizes sizes;
  private final MapOutputRegistry.Handle handle;

  MapOutputRef(int shuffleId, int mapIndex, long mapId, ReportedSizes sizes, MapOutputRegistry.Handle handle) {
    this.shuffleId = shuffleId;
    this.mapIndex = mapIndex;
    this.mapId = mapId;
    this.sizes = sizes;
    this.handle = handle;
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

  ReportedSizes sizes() {
    return sizes;
  }

  MapOutputRegistry.Handle handle() {
    return handle;
  }

  String indexName() {
    return "shuffle_" + shuffleId + "_" + mapId + "_0.index";
  }

  String dataName() {
    return "shuffle_" + shuffleId + "_" + mapId + "_0.data";
  }
}
