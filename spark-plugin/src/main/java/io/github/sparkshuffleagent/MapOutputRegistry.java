package io.github.sparkshuffleagent;

import java.util.List;

/** The few operations on the driver's map output tracker that recovery needs. */
interface MapOutputRegistry {
  /**
   * A registry's opaque token for one listed output (a {@link MapOutputRef#handle()}): only the
   * registry that made it looks inside.
   */
  interface Handle {}

  /** Outputs registered at the executor now, across all shuffles. */
  List<MapOutputRef> outputsOn(String executorId);

  /** Map outputs the shuffle has in all (registered or not): sizes the listing decision. */
  int mapCount(int shuffleId);

  /**
   * Points reducers at the fallback store for this output, only if the tracker still holds this
   * very output (the ref's handle) at the lost location. Returns false (and changes nothing) otherwise.
   */
  boolean repointToFallback(MapOutputRef output);

  /** Unregisters the output if it is still at the lost location, so Spark recomputes it. */
  void unregister(MapOutputRef output);

  /** Makes executors drop cached statuses at their next task. */
  void incrementEpoch();

  /** Spark's own reaction to a lost executor: every output on it recomputed. */
  void unregisterAllOn(String executorId);
}
