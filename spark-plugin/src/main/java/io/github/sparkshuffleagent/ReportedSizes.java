package io.github.sparkshuffleagent;

/**
 * What the driver's map status reports about one map output's blocks, without Spark's types:
 * SparkInternals builds it from the status, so CopyVerifier and MapStatusSizes never touch
 * {@code MapStatus} (a private[spark] class whose shape a new Spark line may change).
 */
interface ReportedSizes {
  /**
   * The size the status reports for reduce partition {@code p}, in Spark's encoding (see
   * MapStatusSizes), or -1 when the status has no partition {@code p}.
   */
  long sizeOf(int p);

  /**
   * Whether the status keeps one encoded size per partition and so knows the partition count
   * exactly (Spark's CompressedMapStatus, below spark.shuffle.minNumPartitionsToHighlyCompress).
   */
  boolean exactPerPartition();
}
